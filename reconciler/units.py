"""Parsing of the value types pool items use: durations, sizes, booleans, count-or-percent.

Every error message says what was given and what is allowed, because it ends up
in front of a person who typed it into `nomad var put`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# Go's time.Duration is int64 nanoseconds; Nomad (and Go's ParseDuration) refuse anything longer,
# so a longer value would only fail later, at every drain, instead of here.
MAX_DURATION = (2**63 - 1) / 1e9


def parse_duration(text: str) -> float:
    """A Go duration ("90s", "5m", "1h30m", "500ms") in seconds. "0" is the only bare number."""
    s = text.strip()
    if s == "0":
        return 0.0
    if s.startswith("-"):
        raise ValueError(f"{text!r} is negative; give a duration like 90s, 5m or 1h30m")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or not s:
        raise ValueError(f"{text!r} is not a duration like 90s, 5m or 1h30m")
    if total > MAX_DURATION:
        raise ValueError(f"{text!r} is longer than the longest Go duration, 2562047h")
    return total


def format_duration(seconds: float) -> str:
    s = round(seconds)
    if s == 0:
        return "0s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            out += f"{s // size}{unit}"
            s %= size
    return out


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """A multipass size ("512M", "2G", "10GiB", "1024K", or bytes) in bytes; units are binary."""
    match = _SIZE.match(text.strip())
    if not match or (match.group(3) and not match.group(2) and match.group(3).lower() != "b"):
        raise ValueError(f"{text!r} is not a size like 512M or 2G")
    value = float(match.group(1)) * _SIZE_FACTORS[match.group(2).upper()]
    if value != int(value):
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def format_size(size: int) -> str:
    """The shortest exact form multipassd parses: 2147483648 -> "2G", 1 TiB -> "1024G".

    The daemon's grammar (``parse_multipassd_size``) has no T: a whole number of
    TiB goes out in G. What is not a whole number of K is sent as plain bytes.
    """
    for unit in ("G", "M", "K"):
        factor = _SIZE_FACTORS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


# multipassd's size grammar (src/utils/memory_size.cpp, mp::in_bytes): optional blanks, an
# integer, a decimal part only when a unit follows, then K, M or G (each optionally with
# B or iB) or a lone B; case-insensitive. The decimal part's bytes are truncated.
_MULTIPASSD_SIZE = re.compile(
    r"\s*(\d+)(?:\.(\d+)(?=[KMG]))?(?:([KMG])(?:i?B)?|B)?\s*", re.IGNORECASE
)


def parse_multipassd_size(text: str) -> int:
    """Bytes, exactly as multipassd reads ``mem_size`` / ``disk_space``; ValueError otherwise."""
    match = _MULTIPASSD_SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a size multipassd parses")
    whole, decimals, unit = match.group(1), match.group(2) or "", match.group(3) or ""
    factor = _SIZE_FACTORS[unit.upper()]
    fraction = int(decimals) * factor // 10 ** len(decimals) if decimals else 0
    return int(whole) * factor + fraction


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    """As Go's strconv.ParseBool, which is what Nomad users know."""
    s = text.strip()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean; use true or false")


@dataclass(frozen=True, slots=True)
class CountOrPercent:
    """An absolute count or a percentage of a total, as Kubernetes' maxSurge/maxUnavailable."""

    value: int
    percent: bool = False

    def resolve(self, total: int, *, round_up: bool) -> int:
        if not self.percent:
            return self.value
        exact = total * self.value / 100
        return math.ceil(exact) if round_up else math.floor(exact)

    def __str__(self) -> str:
        return f"{self.value}%" if self.percent else str(self.value)


def parse_count_or_percent(text: str) -> CountOrPercent:
    s = text.strip()
    percent = s.endswith("%")
    digits = s[:-1] if percent else s
    # isascii: str.isdigit also accepts digits such as '²' that int() then refuses.
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"{text!r} is not a count like 1 or a percentage like 25%")
    value = int(digits)
    if percent and value > 100:
        raise ValueError(f"{text!r} is above 100%")
    return CountOrPercent(value, percent)


def yaml_problem(exc: Exception) -> str:
    """A PyYAML error as a person fixing the item wants it: where (line and column within
    the item's text, 1-based) and what; PyYAML's own text spreads over several lines."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 node``, ``2 nodes``, ``2 launches``: a count a person reads agrees with its noun."""
    return f"{n} {word if n == 1 else many or word + 's'}"
