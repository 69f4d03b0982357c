"""One exception hierarchy for the whole package.

Following kopf, errors are split by what the caller should do about them:

* ``TemporaryError``: the same call may succeed later (connection refused, timeout,
  5xx, 429, UNAVAILABLE). Retried with backoff; a reconcile pass that hits one
  plans nothing and tries again on the next pass.
* ``PermanentError``: retrying the same call cannot help (403, 404, a CAS conflict,
  a wrong passphrase, an invalid spec). Surfaced to the operator.
"""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error this package raises on purpose."""


class TemporaryError(ReconcilerError):
    """The same operation may succeed if tried again later."""


class PermanentError(ReconcilerError):
    """Retrying the same operation cannot succeed."""


class ConfigError(PermanentError):
    """Bad settings or input files: names what is wrong and what is allowed."""
