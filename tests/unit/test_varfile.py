"""`spec validate FILE.nv.hcl`: the repository's own variable files, without a nomad binary."""

from __future__ import annotations

import subprocess

import pytest

from reconciler.varfile import VarFileError, read_var_file
from tests.integration.cli_sim import CLI, ROOT
from tests.unit.test_manifests import EXAMPLES, MANIFESTS, example_items


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_reads_as_nomad_var_put_reads_it(name: str) -> None:
    path, items = read_var_file((MANIFESTS / "pools" / name).read_text())
    assert path is not None and path.startswith("nomad/jobs/multipass-reconciler/pools/")
    assert items == example_items(name)  # the HCL1 reading, heredocs included


@pytest.mark.parametrize("name", EXAMPLES)
def test_spec_validate_accepts_each_example(name: str) -> None:
    out = subprocess.run(
        [*CLI, "spec", "validate", f"manifests/pools/{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert ": valid (template hash " in out.stdout


def test_a_broken_file_is_named_with_where_it_breaks() -> None:
    with pytest.raises(VarFileError, match="line 3, column"):
        read_var_file('path = "x"\nitems {\n  min = \n}\n')
    with pytest.raises(VarFileError, match="no `items"):
        read_var_file('path = "x"\n')
