"""Log output: JSON lines for machines, `key=value` lines for people, secrets scrubbed.

Not on a terminal (under Nomad, in a pipe) every record is one JSON object, so
log shippers need no parsing rules; on a terminal it is one readable line. The
structured fields a record carries through ``extra=`` (pool, action, instance,
node, outcome, duration, error) appear in both.

Secrets (the Nomad token, the multipassd passphrase, the client key) are
registered with ``redact`` when they are loaded and replaced by ``[redacted]``
in every line, whatever logged them: an exception message that quotes a request
cannot leak them. The message, each field and the exception text are scrubbed
before they are serialised, since JSON escaping (or a ``%r``) rewrites a secret
holding quotes, backslashes or non-ASCII characters into text that no longer
contains it; the escaped spellings are registered too, for messages that quote
a JSON body or a repr.

Multipass sets no minimum passphrase length. A secret of 6 characters or more
is scrubbed wherever it appears; a shorter one only as a whole token (bounded
by the text's start or end, whitespace, quotes or ``=:,;()[]{}<>``), so that a
passphrase like ``a`` or ``1`` blanks out the value ``a`` or ``1`` but not
every letter or digit of every line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import IO, Any

FIELDS = ("pool", "action", "instance", "node", "outcome", "duration", "error")
REDACTED = "[redacted]"
MIN_ANYWHERE = 6  # shorter secrets are scrubbed as whole tokens only
# What may surround a short secret for it to count as a whole token.
_DELIMITERS = r"\s\"'`=:,;()\[\]{}<>"

_anywhere: set[str] = set()
_tokens: set[str] = set()
_pattern: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()


def _spellings(secret: str) -> set[str]:
    """The secret as written, JSON-escaped (ASCII or not) and as Python's repr shows it."""
    return {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
    }


def redact(*secrets: str | None) -> None:
    """Scrub these strings from every log line from now on (short ones as whole tokens)."""
    global _pattern
    with _secrets_lock:
        for secret in secrets:
            if secret:
                into = _anywhere if len(secret) >= MIN_ANYWHERE else _tokens
                into.update(_spellings(secret))
        _pattern = None


def redact_pem(pem: bytes | None) -> None:
    """Scrub a PEM key: the whole text and each base64 line of it."""
    if not pem:
        return
    text = pem.decode("ascii", errors="ignore")
    redact(text.strip(), *(line.strip() for line in text.splitlines() if "-----" not in line))


def _compiled() -> re.Pattern[str] | None:
    """One pattern for all secrets, longest first so no secret is left half-replaced."""
    global _pattern
    with _secrets_lock:
        if _pattern is None and (_anywhere or _tokens):
            anywhere = "|".join(re.escape(s) for s in sorted(_anywhere, key=len, reverse=True))
            tokens = "|".join(re.escape(s) for s in sorted(_tokens, key=len, reverse=True))
            parts = [anywhere] if anywhere else []
            if tokens:
                parts.append(f"(?<![^{_DELIMITERS}])(?:{tokens})(?![^{_DELIMITERS}])")
            _pattern = re.compile("|".join(parts))
        return _pattern


def scrub(text: str) -> str:
    pattern = _compiled()
    return pattern.sub(REDACTED, text) if pattern else text


def _scrubbed(value: Any) -> Any:
    """A field's value with secrets removed; numbers and booleans stay what they are."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(value if isinstance(value, str) else str(value))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            out[name] = round(value, 3) if isinstance(value, float) else _scrubbed(value)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        # Scrubbed above, not here: escaping would hide a secret from the scrubber.
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {scrub(record.getMessage())}"
        if fields:
            line += "  " + fields
        if record.exc_info:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


def setup_logging(
    level: str, stream: IO[str] | None = None, json_output: bool | None = None
) -> None:
    """Configure the root logger once per process (the CLI calls this)."""
    stream = stream or sys.stderr
    if json_output is None:
        json_output = not stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_output else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    try:
        root.setLevel(level.upper())
    except ValueError:
        raise ValueError(
            f"--log-level: {level!r} is not one of DEBUG, INFO, WARNING, ERROR"
        ) from None
    # httpx logs every request URL at INFO; keep it for DEBUG.
    logging.getLogger("httpx").setLevel(max(root.level, logging.WARNING))
