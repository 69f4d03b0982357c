"""Log output: JSON lines for machines, `key=value` lines for people, secrets scrubbed.

Not on a terminal (under Nomad, in a pipe) every record is one JSON object, so
log shippers need no parsing rules; on a terminal it is one readable line. The
structured fields a record carries through ``extra=`` (pool, action, instance,
node, outcome, duration, error) appear in both.

Secrets (the Nomad token, the multipassd passphrase, the client key) are
registered with ``redact`` when they are loaded and replaced by ``[redacted]``
in every line, whatever logged them: an exception message that quotes a request
cannot leak them.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import IO, Any

FIELDS = ("pool", "action", "instance", "node", "outcome", "duration", "error")
REDACTED = "[redacted]"
_MIN_SECRET = 6  # shorter strings would scrub ordinary words

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def redact(*secrets: str | None) -> None:
    """Scrub these strings from every log line from now on."""
    with _secrets_lock:
        _secrets.update(s for s in secrets if s and len(s) >= _MIN_SECRET)


def redact_pem(pem: bytes | None) -> None:
    """Scrub a PEM key: the whole text and each base64 line of it."""
    if not pem:
        return
    text = pem.decode("ascii", errors="ignore")
    redact(text.strip(), *(line.strip() for line in text.splitlines() if "-----" not in line))


def scrub(text: str) -> str:
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leaks
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            out[name] = round(value, 3) if isinstance(value, float) else value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()}"
        if fields:
            line += "  " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


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
