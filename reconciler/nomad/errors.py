"""Typed errors for Nomad HTTP API calls.

Classified by what the caller should do (see ``reconciler.errors``): a
``TemporaryError`` may succeed if the same call is made later, a
``PermanentError`` will not. Only ``NomadUnavailable`` is retried by the client
itself; ``LockHeld`` is temporary too, but waiting for another holder's lock
is the caller's policy, not a transport retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.errors import PermanentError, ReconcilerError, TemporaryError

if TYPE_CHECKING:
    from reconciler.nomad.models import Variable


class NomadError(ReconcilerError):
    """Base of every error the Nomad client raises.

    ``endpoint`` is ``"METHOD /v1/path"``, ``status`` the HTTP status when the
    server answered at all.
    """

    def __init__(self, message: str, *, endpoint: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class NotFound(NomadError, PermanentError):
    """The variable, node or lock named does not exist (404, or Nomad's 500 "node not found")."""


class CasConflict(NomadError, PermanentError):
    """A check-and-set write lost: ``current`` is the variable as the server has it.

    ``current`` is None when the server reported no such variable (a CAS index
    given for a path that does not exist) or withheld it (the variable is
    locked by someone else, or the token may not read it).
    """

    def __init__(
        self,
        message: str,
        *,
        current: Variable | None,
        endpoint: str = "",
        status: int | None = 409,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.current = current


class PermissionDenied(NomadError, PermanentError):
    """403: the token is unknown or its policies do not allow the call."""


class BadRequest(NomadError, PermanentError):
    """400 (or another 4xx): the server rejected the request as malformed or invalid."""


class LockHeld(NomadError, TemporaryError):
    """409 on a lock operation: another holder has the lock, or it is in its lock-delay."""


class LockLost(LockHeld):
    """Renew or release of a lock this caller no longer holds (it lapsed or was released)."""


class NomadUnavailable(NomadError, TemporaryError):
    """No usable answer: connection refused, timeout, 5xx, 429.

    ``sent`` is False when the request certainly never reached the server
    (connection refused, TLS failure before the request), so even a
    non-idempotent call can be retried.
    """

    def __init__(
        self, message: str, *, endpoint: str = "", status: int | None = None, sent: bool = True
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.sent = sent


class TlsVerificationFailed(NomadError, PermanentError):
    """Nomad's certificate did not verify (wrong CA, wrong name): a setting to fix, not retry."""


class ProtocolError(NomadError, PermanentError):
    """The server answered with something that is not what the API promises."""
