"""Pool status: what the last pass saw and did, written to `<prefix>/status/<pool>`.

Kubernetes-style conditions (SpecValid, Ready, Progressing, Degraded) with a
reason, a message and the time they last changed; counts; the spec index acted
on; the last plan's summary and the last error. Items are strings (Nomad's rule):
counts as decimal strings, conditions as a JSON list.

Written with check-and-set, never blindly, and not at all when nothing but the
clock would change, so a steady pool causes no index churn.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.diff import plan_summary
from reconciler.errors import ReconcilerError
from reconciler.execute import ActionResult
from reconciler.logs import scrub
from reconciler.nomad.client import NomadClient
from reconciler.nomad.errors import CasConflict, NotFound
from reconciler.nomad.models import QueryResult, VariableMeta
from reconciler.ownership import DEFAULT_HOST
from reconciler.plan import Phase, Plan
from reconciler.scaling.decide import LastScale
from reconciler.units import plural

COUNT_KEYS = (
    "ready",
    "pending",
    "draining",
    "drained",
    "down",
    "held",
    "outdated",
    "unhealthy",
    "protected",
)


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str
    last_transition: str = ""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions_for(
    plan: Plan | None, problems: Sequence[str], results: Sequence[ActionResult]
) -> list[Condition]:
    if plan is None:
        return [
            Condition("SpecValid", False, "InvalidSpec", "; ".join(problems)),
            Condition(
                "Ready", False, "InvalidSpec", "no action is planned while the spec is invalid"
            ),
            Condition("Progressing", False, "InvalidSpec", ""),
            # True: Degraded is the one condition to alert on for a pool that is not
            # reconciled, whatever the cause (docs/status.md).
            Condition("Degraded", True, "InvalidSpec", "; ".join(problems)),
        ]
    c = plan.counts
    failed = [r for r in results if not r.ok]
    ready = c["ready"] >= plan.desired and not c["outdated"]
    ready_reason = "Converged" if ready else "Converging"
    ready_message = f"{c['ready']} of {plan.desired} members ready"
    if not ready and plan.blocked:
        # Protected and held members are never replaced: without a person the pool
        # stays short of the spec, so say who holds it.
        ready_reason = "RolloutBlocked"
        ready_message += (
            "; protected or held members are not replaced and block the rollout: "
            + ", ".join(plan.blocked)
        )
    moving = bool(plan.actions) or c["pending"] or c["draining"] or c["drained"]
    short_circuit = plan.short_circuit
    no_room = plan.insufficient_capacity
    degraded_reason, degraded_message = "AsExpected", ""
    if short_circuit:
        # First: with many members down too, the cause is likelier the network than
        # the new spec (the stall is still in the notes).
        degraded_reason, degraded_message = "RemediationShortCircuited", short_circuit
    elif plan.image_problem is not None:
        degraded_reason, degraded_message = "ImageNotFound", plan.image_problem
    elif no_room is not None:
        # Not a failure to retry: nothing is launched until room is made (docs/hosts.md).
        degraded_reason, degraded_message = "InsufficientCapacity", no_room
    elif plan.launches_held is not None:
        # Nothing fails, and nothing is launched either until the join settings are whole.
        degraded_reason = "LaunchesHeld"
        degraded_message = f"launches held: {plan.launches_held}"
    elif plan.stalled is not None:
        degraded_reason = "RolloutStalled"
        degraded_message = (
            f"{plan.stalled}, of the current spec, never joined Nomad and no member of the "
            "current spec is ready, so no outdated member is replaced; fix the spec (the "
            f"edit replaces {plan.stalled}), or delete {plan.stalled} to retry"
        )
    elif failed:
        degraded_reason = "ActionsFailed"
        degraded_message = "; ".join(
            f"{r.action.kind.value} {r.action.instance}: {r.error}" for r in failed
        )
    elif c["unhealthy"]:
        degraded_reason, degraded_message = (
            "UnhealthyMembers",
            f"{plural(c['unhealthy'], 'unhealthy member')}",
        )
        lost = sorted({m.host for m in plan.members if m.lost})
        if lost:
            degraded_message += (
                f" ({c.get('lost', 0)} lost with {plural(len(lost), 'host')} that cannot be "
                f"read: {', '.join(lost)}; replaced elsewhere)"
            )
    return [
        Condition("SpecValid", True, "Parsed", ""),
        Condition("Ready", ready, ready_reason, ready_message),
        Condition(
            "Progressing",
            bool(moving) and not plan.paused,
            "Paused" if plan.paused else ("Reconciling" if moving else "Idle"),
            plan_summary(plan) if moving else "",
        ),
        Condition("Degraded", degraded_reason != "AsExpected", degraded_reason, degraded_message),
        Condition(
            "InsufficientCapacity",
            no_room is not None,
            "InsufficientCapacity" if no_room is not None else "Fits",
            no_room or "",
        ),
    ]


def status_items(
    plan: Plan | None,
    index: int,
    problems: Sequence[str],
    results: Sequence[ActionResult],
    previous: Mapping[str, str],
    now: float,
    error: str | None = None,
) -> dict[str, str]:
    """The status variable's items; transition times carry over while a condition holds."""
    old = {c.get("type"): c for c in _load_conditions(previous.get("conditions", ""))}
    conditions = []
    for cond in conditions_for(plan, problems, results):
        prior = old.get(cond.type)
        unchanged = prior is not None and prior.get("status") == cond.status
        since = prior.get("last_transition", "") if unchanged and prior else _iso(now)
        # Scrubbed before JSON encoding too: escaping could hide a secret's spelling.
        message = scrub(cond.message)
        conditions.append({**cond.__dict__, "message": message, "last_transition": since})
    items = {
        "spec_index": str(index),
        "conditions": json.dumps(conditions, sort_keys=True),
        "last_error": error or "; ".join(r.error or "" for r in results if not r.ok),
    }
    items.update(_scaling_items(plan, previous, now))
    if plan is not None:
        items["desired"] = str(plan.desired)
        items["desired_reason"] = plan.desired_reason
        items["template_hash"] = plan.template_hash
        items["last_plan"] = plan_summary(plan)
        items["notes"] = "; ".join(plan.notes)
        for key in COUNT_KEYS:
            items[key] = str(plan.counts.get(key, 0))
        items["hosts"] = json.dumps(per_host_counts(plan), sort_keys=True)
    # An exception's text may quote a request with the token or passphrase in it:
    # whatever the items say, no registered secret reaches the status variable.
    return {k: scrub(v) for k, v in items.items() if v != ""}


def per_host_counts(plan: Plan) -> dict[str, dict[str, int]]:
    """Per host the pool's members are on: how many, and how many of them are ready."""
    out: dict[str, dict[str, int]] = {}
    for m in plan.members:
        counts = out.setdefault(m.host, {"members": 0, "ready": 0})
        counts["members"] += 1
        counts["ready"] += m.phase is Phase.READY
    return out


def error_items(
    previous: Mapping[str, str], error: str, reason: str, now: float, index: int | None = None
) -> dict[str, str]:
    """The status after a pass that planned nothing for the pool (a failed read, a crash).

    What the last planned pass recorded (counts, plan, scaling history) stays: it
    is the last that is known. ``last_error`` says what failed and the Degraded
    condition turns True with ``reason``; its transition time holds while it
    stays True, so a lasting outage writes nothing new pass after pass.
    """
    message = scrub(error)
    conditions = _load_conditions(previous.get("conditions", ""))
    prior = next((c for c in conditions if c.get("type") == "Degraded"), None)
    held = prior is not None and prior.get("status") is True and prior.get("last_transition")
    degraded = {
        "type": "Degraded",
        "status": True,
        "reason": reason,
        "message": message,
        "last_transition": prior["last_transition"] if held and prior else _iso(now),
    }
    if prior is None:
        conditions.append(degraded)
    else:
        conditions = [degraded if c is prior else c for c in conditions]
    items = {
        **previous,
        "conditions": json.dumps(conditions, sort_keys=True),
        "last_error": message,
    }
    if index is not None:
        items["spec_index"] = str(index)
    return items


SCALE_KEYS = ("last_scale_count", "last_scale_at", "last_scale_direction", "last_scale_reason")


def _scaling_items(plan: Plan | None, previous: Mapping[str, str], now: float) -> dict[str, str]:
    """The last scaling decision: new when this pass scaled, else carried over.

    Carried over even while a spec is invalid or the policy removed: it is
    history, and the cooldown of a policy put back must still count from it.
    """
    scaling = plan.scaling if plan is not None else None
    if scaling is not None and scaling.scaled is not None:
        return {
            "last_scale_count": str(scaling.count),
            "last_scale_at": _iso(now),
            "last_scale_direction": scaling.scaled,
            "last_scale_reason": scaling.reason,
        }
    return {k: previous[k] for k in SCALE_KEYS if previous.get(k)}


def last_scale_from(items: Mapping[str, str]) -> LastScale | None:
    """The last scaling decision a status variable records; None if none or unreadable."""
    try:
        count = int(items["last_scale_count"])
        at = datetime.strptime(items["last_scale_at"], "%Y-%m-%dT%H:%M:%SZ")
    except (KeyError, ValueError):
        return None
    direction = items.get("last_scale_direction", "up")
    return LastScale(count, at.replace(tzinfo=UTC).timestamp(), direction)


def load_conditions(text: str) -> list[dict[str, Any]]:
    """The conditions a status variable's ``conditions`` item holds; [] if unreadable."""
    return _load_conditions(text)


def _load_conditions(text: str) -> list[dict[str, Any]]:
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


class StatusWriter:
    """Reads and writes status variables, remembering what it last read or wrote.

    A status variable is read again only when ``refresh`` (one list of them all)
    shows its ModifyIndex moved since, so a pass over steady pools reads none:
    what is there is what this writer put there. A write still goes out with
    check-and-set against the remembered index, so a write by anyone else in
    between is never overwritten: the conflict makes it read and rebuild.
    """

    def __init__(self, nomad: NomadClient) -> None:
        self.nomad = nomad
        self.writes = 0
        # path -> (ModifyIndex, items) as last read or written; index 0: absent.
        self._known: dict[str, tuple[int, dict[str, str]]] = {}

    async def refresh(
        self, prefix: str, listing: QueryResult[list[VariableMeta]] | None = None
    ) -> None:
        """Forget what changed under ``prefix`` since it was last seen.

        ``listing``: the variables under ``prefix`` as this pass already listed them;
        without it, one list request. A failed list forgets everything: the next reads
        ask Nomad, never a guess.
        """
        if not self._known:
            return  # nothing remembered, nothing to check
        if listing is None:
            try:
                listing = await self.nomad.list_vars(prefix)
            except ReconcilerError:
                self._known.clear()
                return
        current = {m.path: m.modify_index for m in listing.value}
        self._known = {
            path: known
            for path, known in self._known.items()
            if not path.startswith(prefix) or current.get(path, 0) == known[0]
        }

    async def read(self, path: str) -> dict[str, str]:
        """The status items at ``path``; empty when there is none yet."""
        _, items = await self._current(path)
        return dict(items)

    async def _current(self, path: str) -> tuple[int, dict[str, str]]:
        known = self._known.get(path)
        if known is not None:
            return known
        try:
            var = await self.nomad.get_var(path)
            known = var.modify_index, dict(var.items)
        except NotFound:
            known = 0, {}
        self._known[path] = known
        return known

    async def write(self, path: str, build: Any) -> bool:
        """Write ``build(previous_items)`` at ``path`` with CAS; False when nothing changed.

        One retry on a CAS conflict (another replica, or a person, wrote since we
        last saw it): rebuild from what is there now.
        """
        for _ in range(2):
            cas, previous = await self._current(path)
            items = build(previous)
            if items == previous:
                return False
            try:
                written = await self.nomad.put_var(path, items, cas=cas)
            except CasConflict:
                self._known.pop(path, None)
                continue
            except BaseException:
                self._known.pop(path, None)  # it may have landed: ask next time
                raise
            self._known[path] = written.modify_index, dict(items)
            self.writes += 1
            return True
        return False


NUMBER_KEYS = frozenset({*COUNT_KEYS, "desired", "spec_index", "last_scale_count"})


def status_to_json(items: Mapping[str, str]) -> dict[str, Any]:
    """A status variable for `status -o json`: numbers as numbers, conditions as objects.

    The variable itself keeps strings (Nomad's rule); this is only how it is shown.
    """
    out: dict[str, Any] = {}
    for key, value in items.items():
        if key in NUMBER_KEYS and value.isdigit():
            out[key] = int(value)
        elif key == "conditions":
            out[key] = _load_conditions(value)
        elif key == "hosts":
            out[key] = load_hosts(value)
        else:
            out[key] = value
    return out


def load_hosts(text: str) -> dict[str, dict[str, int]]:
    """The per-host counts a status variable's ``hosts`` item holds; {} if unreadable."""
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {
        str(host): {k: v for k, v in counts.items() if isinstance(v, int)}
        for host, counts in value.items()
        if isinstance(counts, dict)
    }


def _hosts_line(text: str) -> str | None:
    """``host1: 2/2 ready, host2: 1/2 ready``; None for a pool all on the implicit host."""
    hosts = load_hosts(text)
    if not hosts or set(hosts) == {DEFAULT_HOST}:
        return None  # the single-host table stays as it was
    return ", ".join(
        f"{host}: {c.get('ready', 0)}/{c.get('members', 0)} ready"
        for host, c in sorted(hosts.items())
    )


def _indented(label: str, text: str) -> list[str]:
    """``label: text`` under the pool's row; the lines of a multi-line text stay in the column."""
    first, *rest = text.splitlines() or [""]
    pad = " " * 17
    return [f"{pad}{label}: {first}", *(f"{pad}  {line}" for line in rest)]


def read_status_table(statuses: Mapping[str, Mapping[str, str]]) -> str:
    """The status of every pool as a table a person reads at a glance."""
    header = (
        f"{'POOL':<16} {'READY':>7} {'PENDING':>7} {'DRAINING':>8} {'UNHEALTHY':>9} "
        f"{'OUTDATED':>8}  CONDITIONS"
    )
    lines = [header]
    for pool, items in sorted(statuses.items()):
        conds = _load_conditions(items.get("conditions", ""))
        flags = ", ".join(f"{c['type']}={'True' if c['status'] else 'False'}" for c in conds)
        ready = f"{items.get('ready', '-')}/{items.get('desired', '-')}"
        draining = int(items.get("draining", "0")) + int(items.get("drained", "0"))
        lines.append(
            f"{pool:<16} {ready:>7} {items.get('pending', '-'):>7} {draining:>8} "
            f"{items.get('unhealthy', '-'):>9} {items.get('outdated', '-'):>8}  {flags}"
        )
        bad = [
            c for c in conds if (c["type"] == "Degraded") == bool(c["status"]) and c.get("message")
        ]
        shown: set[str] = set()
        for c in bad:
            if c["message"] not in shown:  # SpecValid and Degraded can say the same
                shown.add(c["message"])
                lines += _indented(c["type"], str(c["message"]))
        hosts = _hosts_line(items.get("hosts", ""))
        if hosts is not None:
            lines += _indented("hosts", hosts)
        if items.get("notes"):
            lines += _indented("notes", items["notes"])
        if items.get("last_scale_at"):
            lines += _indented(
                f"last scaled {items.get('last_scale_direction', '?')} to "
                f"{items.get('last_scale_count', '?')} at {items['last_scale_at']}",
                items.get("last_scale_reason", ""),
            )
        if items.get("last_error"):
            lines += _indented("last error", items["last_error"])
    return "\n".join(lines) + "\n"
