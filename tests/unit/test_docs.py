"""Docs that state contracts must not drift from the code."""

from pathlib import Path

from reconciler.spec import ITEMS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_spec_reference_lists_every_item() -> None:
    text = (DOCS / "spec.md").read_text()
    missing = [i.name for i in ITEMS if f"| `{i.name}` |" not in text]
    assert missing == [], f"docs/spec.md lacks {missing}"
