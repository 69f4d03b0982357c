"""Sizes: what the spec accepts, and what goes to multipassd in the daemon's own grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.units import format_size, parse_multipassd_size, parse_size

GiB = 1024**3


@given(st.integers(min_value=1, max_value=2**50))
def test_every_size_goes_out_as_the_daemon_parses_it(size: int) -> None:
    wire = format_size(size)
    assert parse_multipassd_size(wire) == size
    assert "T" not in wire


def test_a_whole_tib_goes_out_in_g() -> None:
    assert format_size(parse_size("1T")) == "1024G"
    assert format_size(parse_size("2T")) == "2048G"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * 1024**2),
        ("1.5G", GiB + GiB // 2),
        ("1.33K", 1361),  # the decimal part's bytes are truncated
        ("2GiB", 2 * GiB),
        ("2gb", 2 * GiB),
        ("1024", 1024),
        ("1024B", 1024),
        (" 1G ", GiB),
    ],
)
def test_the_daemons_grammar(text: str, size: int) -> None:
    assert parse_multipassd_size(text) == size


@pytest.mark.parametrize("text", ["1T", "1.5", "1.5B", "2 G", "1GB2", "-1G", "G", "", "1iB"])
def test_what_the_daemon_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a size multipassd parses"):
        parse_multipassd_size(text)
