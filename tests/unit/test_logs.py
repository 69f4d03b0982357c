"""Log lines: JSON off a terminal, text on one, structured fields in both, secrets scrubbed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from reconciler import logs
from reconciler.logs import REDACTED, redact, redact_pem, scrub, setup_logging

KEY = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7bq0mQ7tdzcbKx9L\n"
    b"-----END PRIVATE KEY-----\n"
)


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test registers its own secrets: a 1-character one must not outlive it."""
    monkeypatch.setattr(logs, "_anywhere", set())
    monkeypatch.setattr(logs, "_tokens", set())
    monkeypatch.setattr(logs, "_pattern", None)


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield io.StringIO()
    root.handlers[:] = handlers  # setup_logging replaced pytest's capture handlers
    root.setLevel(level)


def action_record(**extra: object) -> None:
    fields = {"pool": "web", "action": "drain", "instance": "web-bcdfg-0", "node": "n1"}
    logging.getLogger("reconciler.execute").info(
        "action done", extra={**fields, "outcome": "ok", "duration": 1.23456, **extra}
    )


def test_json_lines_carry_the_action_fields(stream: io.StringIO) -> None:
    setup_logging("INFO", stream, json_output=True)
    action_record()
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "action done" and entry["level"] == "info"
    assert {k: entry[k] for k in ("pool", "action", "instance", "node", "outcome")} == {
        "pool": "web",
        "action": "drain",
        "instance": "web-bcdfg-0",
        "node": "n1",
        "outcome": "ok",
    }
    assert entry["duration"] == 1.235


def test_text_lines_are_readable(stream: io.StringIO) -> None:
    setup_logging("INFO", stream, json_output=False)
    action_record()
    line = stream.getvalue()
    assert "action done" in line and "pool=web" in line and "outcome=ok" in line
    assert not line.lstrip().startswith("{")


def test_the_level_filters_and_a_bad_level_is_named(stream: io.StringIO) -> None:
    setup_logging("WARNING", stream, json_output=True)
    action_record()
    assert stream.getvalue() == ""
    with pytest.raises(ValueError, match="--log-level: 'LOUD' is not one of"):
        setup_logging("LOUD", stream)


def test_secrets_are_scrubbed_from_every_line(stream: io.StringIO) -> None:
    token = "3f1e2d4c-0000-4b6a-9c8d-7e6f5a4b3c2d"
    redact(token, "hunter2-passphrase")
    redact_pem(KEY)
    setup_logging("DEBUG", stream, json_output=True)
    log = logging.getLogger("reconciler.test")
    log.warning("request with X-Nomad-Token: %s failed", token)
    action_record(error="authenticate with hunter2-passphrase refused")
    try:
        raise RuntimeError("key was " + KEY.decode().splitlines()[1])
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    assert token not in out and "hunter2-passphrase" not in out
    assert KEY.decode().splitlines()[1] not in out
    assert out.count(REDACTED) == 3


# Multipass sets no minimum passphrase length, and any character may be in one.
PASSPHRASES = ['pa"ss\\word', "pässwörd1", "ab\\", '"', "ä", "x"]


@pytest.mark.parametrize("json_output", [True, False], ids=["json", "text"])
@pytest.mark.parametrize("passphrase", PASSPHRASES)
def test_no_passphrase_survives_escaping_or_shortness(
    stream: io.StringIO, passphrase: str, json_output: bool
) -> None:
    redact(passphrase)
    setup_logging("DEBUG", stream, json_output=json_output)
    log = logging.getLogger("reconciler.test")
    log.warning("authenticate with %s refused", passphrase)
    log.warning("authenticate with %r refused", passphrase)  # a repr doubles backslashes
    action_record(error=passphrase)
    try:
        raise RuntimeError(f"multipassd said: passphrase {passphrase!r} is not correct")
    except RuntimeError:
        log.exception("boom")
    out = stream.getvalue()
    if json_output:
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [e["message"] for e in entries[:2]] == [
            "authenticate with [redacted] refused",
            "authenticate with '[redacted]' refused",
        ]
        assert entries[2]["error"] == REDACTED
        assert "passphrase '[redacted]' is not correct" in entries[3]["exception"]
        text = "\n".join(
            f"{e['message']} {e.get('error', '')} {e.get('exception', '')}" for e in entries
        )
    else:
        assert "authenticate with [redacted] refused" in out
        assert "authenticate with '[redacted]' refused" in out
        assert f"error={REDACTED}" in out and "passphrase '[redacted]' is not correct" in out
        text = out
    for spelling in {passphrase, repr(passphrase)[1:-1], json.dumps(passphrase)[1:-1]}:
        assert f" {spelling} " not in text and f"'{spelling}'" not in text


def test_a_short_secret_is_scrubbed_as_a_whole_token_only() -> None:
    """A 1-character passphrase must not blank out that letter in every word of every line."""
    redact("a", "42")
    assert scrub("a pool has a node: web-a42, a=42, passphrase 'a'") == (
        "[redacted] pool has [redacted] node: web-a42, [redacted]=[redacted], "
        "passphrase '[redacted]'"
    )


def test_a_long_secret_is_scrubbed_inside_words_too() -> None:
    redact("hunter2-passphrase")
    assert scrub("url?p=hunter2-passphrase&x") == "url?p=[redacted]&x"
