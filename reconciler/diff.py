"""Plan -> text (terraform-plan style) and JSON.

The JSON form is a stable contract for scripts (schema ``multipass-reconciler/plan/v1``,
documented in docs/plan-json.md): fields are only ever added, never renamed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any

from reconciler.plan import Action, ActionKind, Plan
from reconciler.scaling.decide import Decision
from reconciler.spec import PoolSpec
from reconciler.units import plural

__all__ = ["plural"]  # re-exported: the CLI's output uses the same rule

PLAN_SCHEMA = "multipass-reconciler/plan/v1"

_SYMBOL = {
    ActionKind.LAUNCH: "+",
    ActionKind.DRAIN: "-",
    ActionKind.DELETE: "-",
    ActionKind.PURGE_NODE: "x",
}
_COLOUR = {
    ActionKind.LAUNCH: "32",  # green
    ActionKind.DRAIN: "33",  # yellow
    ActionKind.DELETE: "31",  # red
    ActionKind.PURGE_NODE: "35",  # magenta
}
_LABEL = {
    ActionKind.LAUNCH: "launch",
    ActionKind.DRAIN: "drain",
    ActionKind.DELETE: "delete",
    ActionKind.PURGE_NODE: "purge node",
}


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _dur(seconds: float) -> str:
    s = int(seconds)
    parts: list[str] = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if s >= size or (unit == "s" and not parts):
            parts.append(f"{s // size}{unit}")
            s %= size
    return "".join(parts)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _detail(action: Action, spec: PoolSpec) -> str:
    if action.kind is ActionKind.LAUNCH:
        return f"image {spec.image}, {spec.cpus} cpus, {spec.memory} memory, {spec.disk} disk"
    node = f"node {action.node_id[:8]}" if action.node_id else "no node"
    if action.kind is ActionKind.DRAIN:
        deadline = _dur(action.deadline_s) if action.deadline_s is not None else "none"
        return f"{node}, {plural(action.allocations, 'allocation')}, deadline {deadline}"
    if action.kind is ActionKind.DELETE:
        # Allocations still on the node (a drain past its deadline) go with the instance.
        return f"{node}, {plural(action.allocations, 'allocation')}, purge instance"
    return node


def summary_counts(actions: Sequence[Action]) -> dict[str, int]:
    counts = {k.value: 0 for k in ActionKind}
    for a in actions:
        counts[a.kind.value] += 1
    return counts


def summary_line(actions: Sequence[Action]) -> str:
    c = summary_counts(actions)
    if not actions:
        return "No changes. The pool matches its spec."
    return (
        f"Plan: {c['launch']} to launch, {c['drain']} to drain, "
        f"{c['delete']} to delete, {plural(c['purge-node'], 'node')} to purge."
    )


def plan_summary(plan: Plan, *, deleted: bool = False, failing: str | None = None) -> str:
    """The plan's closing line: what it does, or why it does nothing. Never a false "matches".

    ``deleted``: the pool's spec is gone (its status remains); ``failing``: the
    failure the pool's status records, shown when nothing is planned now.
    """
    head = ""
    if deleted:
        head = f"pool {plan.pool}: spec deleted; {plural(len(plan.members), 'member')} to remove. "
    if plan.actions:
        return head + summary_line(plan.actions)
    return head + _why_no_changes(plan, failing)


def _why_no_changes(plan: Plan, failing: str | None) -> str:
    c = plan.counts
    if plan.paused:
        if not plan.paused_actions:
            return "No changes: the pool is paused (and unpaused it would plan none)."
        would = summary_line(plan.paused_actions).removeprefix("Plan: ")
        return f"No changes: the pool is paused. Unpaused, it would plan: {would}"
    if failing:
        return f"No changes planned now, but the last pass failed: {failing}"
    if plan.stalled is not None:
        return f"No changes can be made: the rollout is stalled on {plan.stalled} (see the note)."
    if plan.short_circuit is not None:
        return "No changes can be made: remediation is short-circuited (see the note)."
    if plan.insufficient_capacity is not None:
        return f"No changes can be made: {plan.insufficient_capacity}."
    if plan.waiting_on_hosts:
        return (
            "No changes can be made now: waiting on "
            f"{plural(len(plan.waiting_on_hosts), 'host')} that cannot be read: "
            + ", ".join(plan.waiting_on_hosts)
            + "."
        )
    if plan.blocked:
        return (
            "No changes can be made: protected or held members block the rollout: "
            + ", ".join(plan.blocked)
            + "."
        )
    waiting = [
        plural(n, what, many)
        for n, what, many in (
            (c.get("pending", 0), "launch", "launches"),
            (c.get("draining", 0) + c.get("drained", 0), "drain", None),
            (c.get("deleting", 0), "delete", None),
        )
        if n
    ]
    if waiting:
        return f"No changes to make now: waiting on {' and '.join(waiting)} under way."
    if c.get("node-only", 0):
        return (
            f"No changes to make now: waiting on {plural(c['node-only'], 'node')} "
            "without a VM to go down before it is purged."
        )
    if c.get("ready", 0) < plan.desired or c.get("outdated", 0):
        return (
            f"No changes can be made now: {c.get('ready', 0)} of {plan.desired} ready, "
            f"{c.get('outdated', 0)} outdated (see the notes)."
        )
    return "No changes. The pool matches its spec."


def render_text(
    plan: Plan,
    spec: PoolSpec,
    variable_path: str,
    colour: bool = False,
    *,
    deleted: bool = False,
    failing: str | None = None,
) -> str:
    where = (
        f"spec {variable_path} deleted; its status remains"
        if deleted
        else f"{variable_path} @ index {plan.index}, template hash {plan.template_hash}"
    )
    lines = [
        _paint(f"Pool {plan.pool}", "1", colour) + f"  ({where})",
        f"  desired {plan.desired}: {plan.desired_reason}",
        "  members: " + _count_text(plan.counts),
    ]
    if plan.scaling is not None:
        lines += _scaling_lines(plan.scaling)
    lines += [f"  note: {n}" for n in plan.notes]
    if failing and plan.actions:
        lines.append(f"  note: the last pass failed: {failing}")
    lines.append("")
    width = max((len(a.instance) for a in plan.actions), default=0)
    for a in plan.actions:
        head = _paint(f"  {_SYMBOL[a.kind]} {_LABEL[a.kind]:<10}", _COLOUR[a.kind], colour)
        where = f" on {a.host}" if plan.show_hosts else ""
        lines.append(f"{head} {a.instance:<{width}}{where}  {_detail(a, spec)}  # {a.reason}")
    if plan.actions:
        lines.append("")
    lines.append(plan_summary(plan, deleted=deleted, failing=failing))
    return "\n".join(lines) + "\n"


def _scaling_lines(d: Decision) -> list[str]:
    """Each check's metric, proposal and verdict: why the policy wants this count."""
    lines = []
    for c in d.checks:
        value = "no data" if c.value is None else f"{c.value:.1f}"
        proposal = "-" if c.proposal is None else str(c.proposal)
        mark = " (won)" if c.name == d.winner else ""
        lines.append(
            f"  check {c.name}{mark}: {c.metric} = {value}; proposes {proposal} "
            f"({c.direction}): {c.reason}"
        )
    if d.cooldown_until is not None:
        lines.append(
            f"  cooldown: {_dur(d.cooldown_remaining)} left, until {_iso(d.cooldown_until)}"
        )
    return lines


def _scaling_json(d: Decision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "count": d.count,
        "baseline": d.baseline,
        "winner": d.winner,
        "clamped_from": d.clamped_from,
        "cooldown_remaining_seconds": d.cooldown_remaining,
        "cooldown_until": _iso(d.cooldown_until) if d.cooldown_until is not None else None,
        "scaled": d.scaled,
        "checks": [
            {
                "name": c.name,
                "metric": c.metric,
                "value": c.value,
                "proposal": c.proposal,
                "direction": c.direction,
                "reason": c.reason,
            }
            for c in d.checks
        ],
    }


def _count_text(counts: Mapping[str, int]) -> str:
    shown = (
        "ready",
        "pending",
        "draining",
        "drained",
        "down",
        "held",
        "outdated",
        "unhealthy",
        "lost",
        "displaced",
    )
    parts = [f"{counts.get(k, 0)} {k}" for k in shown if counts.get(k, 0) or k == "ready"]
    return ", ".join(parts)


def plan_to_json(
    plan: Plan, spec: PoolSpec, variable_path: str, *, deleted: bool = False
) -> dict[str, Any]:
    return {
        "schema": PLAN_SCHEMA,
        "pool": plan.pool,
        "variable": variable_path,
        "index": plan.index,
        "template_hash": plan.template_hash,
        "valid": True,
        "paused": plan.paused,
        "deleted": deleted,
        "desired": plan.desired,
        "desired_reason": plan.desired_reason,
        "scaling": _scaling_json(plan.scaling),
        "counts": dict(plan.counts),
        "notes": list(plan.notes),
        "insufficient_capacity": plan.insufficient_capacity,
        "waiting_on_hosts": list(plan.waiting_on_hosts),
        "actions": [_action_json(a, spec) for a in plan.actions],
        "summary": summary_counts(plan.actions),
        "summary_text": plan_summary(plan, deleted=deleted),
    }


def invalid_to_json(
    pool: str, variable_path: str, index: int, problems: Sequence[str]
) -> dict[str, Any]:
    """The JSON shape of a pool whose spec does not parse: no actions, the problems listed."""
    return {
        "schema": PLAN_SCHEMA,
        "pool": pool,
        "variable": variable_path,
        "index": index,
        "valid": False,
        "problems": list(problems),
        "actions": [],
        "summary": summary_counts([]),
    }


def _action_json(a: Action, spec: PoolSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": a.kind.value,
        "instance": a.instance,
        "node_id": a.node_id,
        "host": a.host,
        "reason": a.reason,
    }
    if a.kind is ActionKind.LAUNCH:
        out.update(image=spec.image, cpus=spec.cpus, memory=spec.memory, disk=spec.disk)
    if a.kind in (ActionKind.DRAIN, ActionKind.DELETE):
        out["allocations"] = a.allocations
    if a.kind is ActionKind.DRAIN:
        out["deadline_seconds"] = a.deadline_s
    return out
