"""ACL tokens and what they allow (after nomad/state/state_store_acl.go and acl/)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from reconciler.sim.nomad_state.base import SimError, StateBase


@dataclass
class Policy:
    """What a token may do.

    variables: path glob -> capabilities among read, write, list, destroy, deny;
    the most specific matching glob decides, and "deny" anywhere among the
    matches wins. node: "deny", "read" or "write". read_job: the namespace
    capability that allocation and evaluation listings need.
    """

    variables: dict[str, set[str]] = field(default_factory=dict)
    node: str = "deny"
    read_job: bool = False
    management: bool = False

    def can_var(self, path: str, capability: str) -> bool:
        if self.management:
            return True
        matches = [
            (glob, caps) for glob, caps in self.variables.items() if fnmatch.fnmatchcase(path, glob)
        ]
        if not matches or any("deny" in caps for _, caps in matches):
            return False
        _, caps = max(matches, key=lambda m: len(m[0].replace("*", "")))
        return capability in caps

    def can_node(self, write: bool) -> bool:
        if self.management:
            return True
        return self.node == "write" or (self.node == "read" and not write)

    def can_read_job(self) -> bool:
        return self.management or self.read_job


MANAGEMENT = Policy(management=True)


class AclTables(StateBase):
    acl_enabled: bool
    anonymous: Policy

    def add_token(self, policy: Policy, secret: str | None = None) -> str:
        """Register a token; returns its secret ID (what goes in X-Nomad-Token)."""
        secret = secret or self.new_id()
        self.tokens[secret] = policy
        return secret

    def authorize(self, token: str | None) -> Policy:
        """The policy a request's token carries (everything when ACLs are off)."""
        if not self.acl_enabled:
            return MANAGEMENT
        if not token:
            return self.anonymous
        policy = self.tokens.get(token)
        if policy is None:
            raise SimError(403, "ACL token not found")
        return policy
