"""Variable files as `nomad var put -in hcl` reads them: ``path = "..."`` and ``items { }``.

`spec validate FILE` reads the repository's own ``manifests/pools/*.nv.hcl`` with
this, so they can be checked where no `nomad` binary is installed. Nomad parses
these files with HCL1; python-hcl2 reads the same syntax, except heredocs: HCL1's
``<<-EOT`` strips the closing marker's indentation from every line, and only when
every line has it, where HCL2 strips the common indentation. Heredocs are taken
from the text with HCL1's rule.
"""

from __future__ import annotations

import json
import re
from typing import Any

import hcl2

_HEREDOC = re.compile(
    r"^[ \t]*(\w+)[ \t]*=[ \t]*<<(-?)([A-Za-z_]\w*)\n(.*?)^([ \t]*)\3[ \t]*$", re.M | re.S
)


class VarFileError(ValueError):
    pass


def _hcl1_heredocs(source: str) -> dict[str, str]:
    values = {}
    for m in _HEREDOC.finditer(source):
        key, dash, _, body, indent = m.groups()
        lines = body.split("\n")[:-1]  # the body ends with its last line's newline
        if dash and all(line.startswith(indent) for line in [*lines, indent]):
            body = "".join(line[len(indent) :] + "\n" for line in lines)
        values[key] = body
    return values


def _string(value: Any) -> str:
    """An HCL string value without python-hcl2's quotes."""
    s = str(value)
    if s.startswith('"') and s.endswith('"'):
        return str(json.loads(s, strict=False))  # HCL's escapes in these files are JSON's
    return s


def read_var_file(source: str) -> tuple[str | None, dict[str, str]]:
    """The variable's path (if the file names one) and its items, all strings."""
    try:
        doc = hcl2.loads(source)
    except Exception as exc:  # python-hcl2 raises lark's errors, with line and column
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VarFileError(f"not a variable file (HCL): {first}") from None
    blocks = doc.get("items")
    if not blocks:
        raise VarFileError("no `items { ... }` block (as `nomad var put -in hcl` expects)")
    raw: dict[str, Any] = {}
    for block in blocks if isinstance(blocks, list) else [blocks]:
        raw.update({k: v for k, v in block.items() if not k.startswith("__")})
    heredocs = _hcl1_heredocs(source)
    items = {k: heredocs[k] if k in heredocs else _string(v) for k, v in raw.items()}
    path = doc.get("path")
    return (_string(path) if path is not None else None), items
