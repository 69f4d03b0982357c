"""Typed errors for multipassd calls, mapped from gRPC status codes and the daemon's messages."""

from __future__ import annotations

from reconciler.errors import PermanentError, ReconcilerError, TemporaryError


class MultipassError(ReconcilerError):
    """Base of every multipassd error."""


class NotAuthenticated(MultipassError, PermanentError):
    """The daemon does not trust this client certificate (UNAUTHENTICATED)."""


class WrongPassphrase(MultipassError, PermanentError):
    """`authenticate` with a passphrase the daemon rejects (INVALID_ARGUMENT)."""


class PassphraseNotSet(MultipassError, PermanentError):
    """`authenticate` while the daemon has no passphrase (FAILED_PRECONDITION, any wording)."""


class AlreadyExists(MultipassError, PermanentError):
    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class BeingPrepared(MultipassError, TemporaryError):
    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(message)


class DoesNotExist(MultipassError, PermanentError):
    """NOT_FOUND for names the daemon does not have: ``names`` all of them, ``name`` the first."""

    def __init__(self, name: str, message: str, names: tuple[str, ...] = ()) -> None:
        self.name = name
        self.names = names or (name,)
        super().__init__(message)


class LaunchFailed(MultipassError, PermanentError):
    """The daemon took the launch but could not finish it.

    ``instance_kept`` says what it left: False when it failed while preparing
    (FAILED_PRECONDITION; the daemon released the name and left no instance), True
    when the VM was created but did not start or boot in time (the instance stays,
    stopped or still booting).
    """

    def __init__(self, name: str, message: str, *, instance_kept: bool) -> None:
        self.name = name
        self.instance_kept = instance_kept
        super().__init__(message)


class InsufficientCapacity(LaunchFailed):
    """The host's free disk is below the image's minimum size."""


class LaunchTimedOut(LaunchFailed):
    """The VM did not answer SSH (or finish cloud-init) within the launch's timeout.

    The daemon keeps the instance: in state UNKNOWN when SSH never answered. It is
    what it is, a member that may still come up, or stay broken and be replaced.
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(name, message, instance_kept=True)


class ImageNotFound(LaunchFailed):
    """The daemon knows no image by that name (daemon.cpp: validate_image).

    Refused before anything was created. Not a failure to retry: the spec names an
    image this daemon cannot launch, until the spec or the daemon's catalogue changes.
    """

    def __init__(self, name: str, image: str, message: str) -> None:
        self.image = image
        super().__init__(name, message, instance_kept=False)


class InvalidRequest(MultipassError, PermanentError):
    """The daemon rejected the request's arguments."""


class MultipassUnavailable(MultipassError, TemporaryError):
    """The daemon cannot be reached, or answered UNAVAILABLE."""


class DeadlineExceeded(MultipassError, TemporaryError):
    """The call's deadline passed before the daemon answered."""


class TlsVerificationFailed(MultipassError, PermanentError):
    """The daemon's certificate is not the pinned one (or the TLS handshake failed)."""
