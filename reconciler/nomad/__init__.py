"""Client for Nomad's HTTP API: settings, typed errors, typed models, the async client."""

from reconciler.nomad.client import NodeDetails, NomadClient
from reconciler.nomad.errors import (
    BadRequest,
    CasConflict,
    LockHeld,
    LockLost,
    NomadError,
    NomadUnavailable,
    NotFound,
    PermissionDenied,
    ProtocolError,
    TlsVerificationFailed,
)
from reconciler.nomad.models import (
    Allocation,
    Evaluation,
    Node,
    NodeStub,
    QueryResult,
    Variable,
    VariableMeta,
)
from reconciler.nomad.settings import NomadSettings

__all__ = [
    "Allocation",
    "BadRequest",
    "CasConflict",
    "Evaluation",
    "LockHeld",
    "LockLost",
    "Node",
    "NodeDetails",
    "NodeStub",
    "NomadClient",
    "NomadError",
    "NomadSettings",
    "NomadUnavailable",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "QueryResult",
    "TlsVerificationFailed",
    "Variable",
    "VariableMeta",
]
