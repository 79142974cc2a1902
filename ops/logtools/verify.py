"""``verify``: the live projections and the latest snapshot must equal a fold of the log.

A manager answers ``vigil.cmd.projections.dump`` with per-entity digests of its projections at
one instant (``seq``); with ``keys`` it returns those entities in full (for the diff). ``verify``
rebuilds from zero up to the snapshot's sequence and the live one (one pass, two checkpoints)
and compares entity by entity. Entity keys are ``<projection>/<id>`` (``streams/s-1``); an
entity is its folded state plus the sequence of its last event.

Limitation: one digest reply must fit in a NATS message (default 1 MB, ~25,000 entities).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, UnsetType
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from events import subjects
from ops.api.requests import DumpReq
from ops.logtools.replay import Rebuilt, fresh_projections, rebuild
from projections.engine import Projector, SnapshotError
from projections.fleet import Fleet
from projections.snapshot import latest_snapshot, restore_into, snapshottable

__all__ = [
    "Difference",
    "DumpResult",
    "compare",
    "digest_dump",
    "dump_handler",
    "dump_projections",
    "render_diff",
]

Dump = dict[str, dict[str, Any]]  # projection name → entity id → canonical entity
Digests = dict[str, dict[str, str]]  # projection name → entity id → digest


class DumpResult(msgspec.Struct, frozen=True, kw_only=True):
    """Reply of ``projections.dump``: digests of every entity, or the asked entities in full."""

    seq: int
    manager_id: str
    digests: Digests | UnsetType = UNSET
    values: dict[str, Any] | UnsetType = UNSET


def dump_projections(projections: Sequence[Any]) -> Dump:
    return {p.name: p.dump() for p in projections if hasattr(p, "dump")}


def _digest(entity: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(entity, order="sorted")).hexdigest()[:16]


def digest_dump(dump: Dump) -> Digests:
    return {name: {k: _digest(v) for k, v in entities.items()} for name, entities in dump.items()}


def pick(dump: Dump, keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        name, _, eid = key.partition("/")
        out[key] = dump.get(name, {}).get(eid)
    return out


def dump_handler(
    fleet: Fleet, projector: Projector, manager_id: str
) -> Callable[[DumpReq], Awaitable[tuple[DumpResult, int]]]:
    """The ``projections.dump`` route of a manager (read-only)."""

    async def handler(req: DumpReq) -> tuple[DumpResult, int]:
        seq = projector.last_seq  # dump and seq taken with no await in between
        dump = dump_projections(fleet.all())
        if req.keys is None:
            return DumpResult(seq=seq, manager_id=manager_id, digests=digest_dump(dump)), seq
        return DumpResult(seq=seq, manager_id=manager_id, values=pick(dump, req.keys)), seq

    return handler


class Difference(msgspec.Struct, frozen=True):
    key: str  # "streams/s-1"
    kind: str  # "missing" (only in the log), "extra" (only in the other side), "changed"
    fields: list[tuple[str, Any, Any]] = []  # (field path, log value, other value)


def compare(log: Digests, other: Digests) -> list[str]:
    """Keys whose digests differ (or exist on one side only), sorted."""
    keys: set[str] = set()
    for name in set(log) | set(other):
        a, b = log.get(name, {}), other.get(name, {})
        keys |= {f"{name}/{k}" for k in set(a) | set(b) if a.get(k) != b.get(k)}
    return sorted(keys)


def _fields(path: str, a: Any, b: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            _fields(f"{path}.{k}" if path else str(k), a.get(k), b.get(k), out)
    elif a != b:
        out.append((path, a, b))


def differences(keys: list[str], log_values: dict[str, Any],
                other_values: dict[str, Any]) -> list[Difference]:  # fmt: skip
    diffs: list[Difference] = []
    plain = orjson.loads(orjson.dumps(log_values))  # tuples → lists, like the other side's JSON
    for key in keys:
        a, b = plain.get(key), other_values.get(key)
        if b is None:
            diffs.append(Difference(key, "missing"))
        elif a is None:
            diffs.append(Difference(key, "extra"))
        else:
            fields: list[tuple[str, Any, Any]] = []
            _fields("", a, b, fields)
            diffs.append(Difference(key, "changed", fields))
    return diffs


def _short(v: Any) -> str:
    text = orjson.dumps(v).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def render_diff(label: str, diffs: list[Difference], limit: int = 50) -> list[str]:
    """Readable lines: ``streams/s-1  status: log "pending" ≠ live "done"``."""
    lines = [f"{label}: {len(diffs)} entities differ"]
    for d in diffs[:limit]:
        if d.kind == "missing":
            lines.append(f"  {d.key}: in the log, missing from {label}")
        elif d.kind == "extra":
            lines.append(f"  {d.key}: in {label}, not in the log")
        elif not d.fields:
            lines.append(f"  {d.key}: digest differed, but it has changed since (raced); re-run")
        else:
            for path, a, b in d.fields:
                lines.append(f"  {d.key}  {path}: log {_short(a)} ≠ {label} {_short(b)}")
    if len(diffs) > limit:
        lines.append(f"  ... and {len(diffs) - limit} more")
    return lines


# ---- the whole check -------------------------------------------------------------------------


class Check(msgspec.Struct):
    """One comparison: the log folded to ``seq`` against ``label`` (live or snapshot)."""

    label: str
    seq: int
    entities: int = 0
    diffs: list[Difference] = []
    skipped: str | None = None  # why it was not made

    @property
    def ok(self) -> bool:
        return self.skipped is None and not self.diffs


async def _ask(nc: Client, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    msg = await nc.request(subjects.command("projections.dump"), orjson.dumps(body),
                           timeout=timeout)  # fmt: skip
    reply: dict[str, Any] = orjson.loads(msg.data)
    if not reply.get("ok"):
        raise RuntimeError(f"manager refused projections.dump: {reply.get('error')}")
    result: dict[str, Any] = reply["result"]
    return result


async def verify(nc: Client, *, live: bool = True, snapshot: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> list[Check]:  # fmt: skip
    """Rebuild from zero and compare with a running manager and with the latest snapshot.

    A side that is not available (no manager answers, no snapshot) is reported as skipped.
    """
    targets: list[tuple[Check, Digests | None, Callable[[list[str]], Awaitable[dict[str, Any]]]]]
    targets = []
    if live:
        try:
            answer = await _ask(nc, {})
        except (NoRespondersError, NatsTimeout) as exc:
            targets.append((Check("live", 0, skipped=f"no manager answered ({exc!r})"), None,
                            _none))  # fmt: skip
        else:

            async def live_values(keys: list[str]) -> dict[str, Any]:
                return dict((await _ask(nc, {"keys": keys}))["values"])

            check = Check(f"live {answer['manager_id']}", int(answer["seq"]))
            targets.append((check, answer["digests"], live_values))
    if snapshot:
        snap = await latest_snapshot(nc)
        if snap is None:
            targets.append((Check("snapshot", 0, skipped="no valid snapshot"), None, _none))
        else:
            restored = snapshottable(fresh_projections())
            try:
                if restored is None:
                    raise SnapshotError("a projection of this version cannot be snapshotted")
                restore_into(snap, restored)
            except SnapshotError as exc:
                check = Check("snapshot", snap.header.seq, skipped=f"not restorable: {exc}")
                targets.append((check, None, _none))
            else:
                sdump = dump_projections(restored)

                async def snap_values(keys: list[str]) -> dict[str, Any]:
                    return pick(sdump, keys)

                check = Check("snapshot", snap.header.seq)
                targets.append((check, digest_dump(sdump), snap_values))

    state: Rebuilt | None = None
    for check, digests, values in sorted(targets, key=lambda t: t[0].seq):
        if digests is None:
            continue
        state = await rebuild(nc, check.seq, start=state, progress=progress)
        log_dump = dump_projections(state.projections)
        keys = compare(digest_dump(log_dump), digests)
        check.entities = sum(len(v) for v in log_dump.values())
        if keys:
            check.diffs = differences(keys, pick(log_dump, keys), await values(keys[:1000]))
    return [t[0] for t in targets]


async def _none(keys: list[str]) -> dict[str, Any]:
    return {}
