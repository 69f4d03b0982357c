"""Regenerate the gRPC stubs from multipass.proto: `python -m reconciler.multipass.gen_stubs`.

The generated modules are committed (so installing needs no protoc) and a test
regenerates them into a temporary directory to prove they are not stale.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "multipass.proto"
OUT = HERE / "_pb"


def generate(out_dir: Path = OUT) -> list[Path]:
    """Write multipass_pb2.py and multipass_pb2_grpc.py into ``out_dir``; return their paths."""
    from grpc_tools import protoc  # test/dev dependency only

    out_dir.mkdir(parents=True, exist_ok=True)
    include = str(resources.files("grpc_tools").joinpath("_proto"))
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{HERE}",
            f"-I{include}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO),
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    grpc_module = out_dir / "multipass_pb2_grpc.py"
    # protoc writes an absolute import; the stubs live inside a package.
    text = grpc_module.read_text()
    grpc_module.write_text(
        text.replace(
            "import multipass_pb2 as multipass__pb2",
            "from . import multipass_pb2 as multipass__pb2",
        )
    )
    return [out_dir / "multipass_pb2.py", out_dir / "multipass_pb2.pyi", grpc_module]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print(path)
