"""Docs that state contracts must not drift from the code."""

from pathlib import Path

from reconciler.spec import ITEMS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_spec_reference_lists_every_item() -> None:
    text = (DOCS / "spec.md").read_text()
    missing = [i.name for i in ITEMS if f"| `{i.name}` |" not in text]
    assert missing == [], f"docs/spec.md lacks {missing}"


def test_status_reference_lists_every_count() -> None:
    from reconciler.status import COUNT_KEYS

    text = (DOCS / "status.md").read_text()
    missing = [k for k in COUNT_KEYS if f"| `{k}` |" not in text]
    assert missing == [], f"docs/status.md lacks {missing}"
