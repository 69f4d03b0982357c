"""Fault injection shared by both simulators.

A fault is keyed by an endpoint name: for Nomad the route name such as
``GET /v1/nodes`` or a prefix such as ``* /v1/var``; for multipassd the RPC name
such as ``launch``. ``*`` matches every endpoint. Randomness comes from one seeded
``random.Random`` so a run is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    """What to do to calls that match.

    error_rate: probability in [0, 1] that a call fails (HTTP 500 / gRPC UNAVAILABLE).
    latency: seconds added to every matching call (real seconds, on the server).
    hang: the call never answers (the client's deadline must save it).
    """

    error_rate: float = 0.0
    latency: float = 0.0
    hang: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate: {self.error_rate} is not within [0, 1]")
        if self.latency < 0:
            raise ValueError(f"latency: {self.latency} is negative")


@dataclass
class FaultInjector:
    seed: int = 0
    faults: dict[str, Fault] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def set(self, endpoint: str, fault: Fault) -> None:
        self.faults[endpoint] = fault

    def clear(self, endpoint: str | None = None) -> None:
        if endpoint is None:
            self.faults.clear()
        else:
            self.faults.pop(endpoint, None)

    def lookup(self, endpoint: str) -> Fault | None:
        """The most specific fault for an endpoint: exact name, then longest prefix, then ``*``."""
        if endpoint in self.faults:
            return self.faults[endpoint]
        best: tuple[int, Fault] | None = None
        for key, fault in self.faults.items():
            is_prefix = key != "*" and key.endswith("*") and endpoint.startswith(key[:-1])
            if is_prefix and (best is None or len(key) > best[0]):
                best = (len(key), fault)
        if best is not None:
            return best[1]
        return self.faults.get("*")

    def should_fail(self, fault: Fault) -> bool:
        return fault.error_rate > 0 and self._rng.random() < fault.error_rate


def parse_fault_flag(text: str) -> tuple[str, Fault]:
    """Parse ``ENDPOINT:error_rate=0.2,latency=0.5,hang`` as given to ``reconciler sim --fault``."""
    endpoint, sep, opts = text.rpartition(":")
    if not sep or not endpoint:
        raise ValueError(
            f"--fault {text!r}: expected ENDPOINT:OPTIONS, e.g. 'launch:error_rate=0.3' "
            "or 'GET /v1/nodes:latency=0.5'"
        )
    kwargs: dict[str, float | bool] = {}
    for part in filter(None, (p.strip() for p in opts.split(","))):
        key, eq, value = part.partition("=")
        if key == "hang" and not eq:
            kwargs["hang"] = True
        elif key in ("error_rate", "latency") and eq:
            try:
                kwargs[key] = float(value)
            except ValueError:
                raise ValueError(f"--fault {text!r}: {key}={value!r} is not a number") from None
        else:
            raise ValueError(
                f"--fault {text!r}: unknown option {part!r}; allowed: error_rate=P, latency=S, hang"
            )
    return endpoint, Fault(**kwargs)  # type: ignore[arg-type]
