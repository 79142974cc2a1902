"""Outbox: ordering, durable seq, coalescing rules, size policy, corruption and kill -9 recovery."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent.outbox import (
    FeedbackDraft,
    Outbox,
    OutboxError,
    OutboxFull,
    OutboxLocked,
    OutboxMismatch,
)
from events.feedback import FeedbackError, StreamStats

DAY = "2025-06-01"
REPO = Path(__file__).resolve().parents[1]


def frames(n: int) -> StreamStats:
    return StreamStats(frames_decoded=n, bytes_read=100 * n, peak_bitrate_bps=n)


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(tmp_path / "outbox.db", "agent-1")
    try:
        yield ob
    finally:
        await ob.close()


async def test_put_peek_ack_keep_seq_order(outbox: Outbox) -> None:
    a = await outbox.put("s1", 1, "in_progress", day=DAY, ts=1.0, stats=frames(1))
    b = await outbox.put("s2", 1, "in_progress", day=DAY, ts=2.0, stats=frames(2))
    c = await outbox.put("s3", 1, "done", day=DAY, ts=3.0)
    assert [b.seq, c.seq] == [a.seq + 1, a.seq + 2]
    assert a.agent_id == "agent-1" and a.stats == frames(1)
    assert await outbox.peek(10) == [a, b, c]
    assert outbox.depth() == 3

    assert await outbox.claim(10) == [a, b, c]
    assert await outbox.ack(a.seq) == 1
    assert await outbox.ack([c.seq]) == 1
    assert await outbox.peek(10) == [b]
    assert outbox.depth() == 1


async def test_ack_of_unclaimed_rows_is_refused(outbox: Outbox) -> None:
    a = await outbox.put("s1", 1, "in_progress", day=DAY, ts=1.0)
    with pytest.raises(OutboxError, match="never claimed"):
        await outbox.ack(a.seq)
    assert outbox.depth() == 1


async def test_seq_survives_reopen_and_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with await Outbox.open(path, "agent-1") as ob:
        rows = [await ob.put(f"s{i}", 1, "done", day=DAY, ts=1.0) for i in range(3)]
        await ob.claim(10)
        await ob.ack(rows[-1].seq)
        assert ob.depth() == 0
    async with await Outbox.open(path, "agent-1") as ob:
        assert ob.recovered_from is None
        assert ob.last_seq == rows[-1].seq
        nxt = await ob.put("s9", 1, "in_progress", day=DAY, ts=2.0)
        assert nxt.seq == rows[-1].seq + 1


async def test_unsent_in_progress_deltas_coalesce_into_the_newest_row(outbox: Outbox) -> None:
    first = await outbox.put("s1", 1, "in_progress", day=DAY, ts=10.0, stats=frames(3))
    merged = await outbox.put("s1", 1, "in_progress", day=DAY, ts=20.0, stats=frames(4))
    assert merged.seq == first.seq
    assert merged.ts == 20.0
    assert merged.stats == StreamStats(frames_decoded=7, bytes_read=700, peak_bitrate_bps=4)
    assert await outbox.peek(10) == [merged]
    assert outbox.last_seq == first.seq  # a merge consumes no seq


@pytest.mark.parametrize(
    "second",
    [
        FeedbackDraft(stream_id="s1", version=1, status="in_progress", day="2025-06-02", ts=11.0),
        FeedbackDraft(stream_id="s1", version=2, status="in_progress", day=DAY, ts=11.0),
        FeedbackDraft(stream_id="s2", version=1, status="in_progress", day=DAY, ts=11.0),
        FeedbackDraft(
            stream_id="s1",
            version=1,
            status="in_progress",
            day=DAY,
            ts=11.0,
            error=FeedbackError(code="reconnecting"),
        ),
        FeedbackDraft(stream_id="s1", version=1, status="in_progress", day=DAY, ts=71.0),
    ],
    ids=["other-day", "other-version", "other-stream", "with-error", "past-window"],
)
async def test_deltas_of_another_key_or_past_the_window_get_their_own_row(
    outbox: Outbox, second: FeedbackDraft
) -> None:
    await outbox.put("s1", 1, "in_progress", day=DAY, ts=10.0, stats=frames(1))
    await outbox.put_many([second])
    assert outbox.depth() == 2


async def test_never_merges_across_a_status_change(outbox: Outbox) -> None:
    await outbox.put("s1", 1, "in_progress", day=DAY, ts=1.0, stats=frames(1))
    await outbox.put("s1", 1, "failure", day=DAY, ts=2.0, error=FeedbackError(code="eof"))
    later = await outbox.put("s1", 1, "in_progress", day=DAY, ts=3.0, stats=frames(5))
    rows = await outbox.peek(10)
    assert [r.status for r in rows] == ["in_progress", "failure", "in_progress"]
    assert rows[0].stats == frames(1) and rows[2] == later


async def test_claimed_rows_never_change_even_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with await Outbox.open(path, "agent-1") as ob:
        sent = await ob.put("s1", 1, "in_progress", day=DAY, ts=1.0, stats=frames(1))
        assert await ob.claim(10) == [sent]  # the sender is publishing it now
        after = await ob.put("s1", 1, "in_progress", day=DAY, ts=2.0, stats=frames(2))
        assert after.seq == sent.seq + 1
        assert (await ob.peek(10))[0] == sent
    async with await Outbox.open(path, "agent-1") as ob:  # the freeze is durable
        assert ob.claimed_seq == sent.seq
        merged = await ob.put("s1", 1, "in_progress", day=DAY, ts=3.0, stats=frames(4))
        assert merged.seq == after.seq and merged.stats.frames_decoded == 6
        assert (await ob.peek(10))[0] == sent


async def test_full_outbox_refuses_new_streams_but_keeps_every_delta(tmp_path: Path) -> None:
    async with await Outbox.open(tmp_path / "o.db", "a", max_rows=2, coalesce_window_s=5) as ob:
        await ob.put("s1", 1, "in_progress", day=DAY, ts=0.0, stats=frames(1))
        await ob.put("s2", 1, "in_progress", day=DAY, ts=0.0, stats=frames(1))
        assert ob.is_full()

        with pytest.raises(OutboxFull, match="refuse new stream 's3'"):
            await ob.put("s3", 1, "in_progress", day=DAY, ts=1.0, stats=frames(1))
        with pytest.raises(OutboxFull):  # a new version is a new assignment
            await ob.put("s1", 2, "in_progress", day=DAY, ts=1.0, stats=frames(1))
        assert ob.depth() == 2

        # Full: coalesce harder (past the 5 s window) instead of adding rows.
        merged = await ob.put("s1", 1, "in_progress", day=DAY, ts=100.0, stats=frames(2))
        assert merged.stats.frames_decoded == 3 and ob.depth() == 2

        # A running stream whose row is in flight still gets its delta stored (over the bound).
        await ob.claim(10)
        extra = await ob.put("s1", 1, "in_progress", day=DAY, ts=101.0, stats=frames(4))
        again = await ob.put("s1", 1, "in_progress", day=DAY, ts=102.0, stats=frames(5))
        assert again.seq == extra.seq and again.stats.frames_decoded == 9
        # Status changes of known streams are always accepted.
        await ob.put("s2", 1, "done", day=DAY, ts=103.0)
        assert ob.depth() == 4

        await ob.claim(10)
        await ob.ack(ob.claimed_seq)  # the backlog drained
        assert not ob.is_full()
        await ob.put("s3", 1, "in_progress", day=DAY, ts=104.0)


async def test_put_many_is_all_or_nothing(tmp_path: Path) -> None:
    async with await Outbox.open(tmp_path / "o.db", "a", max_rows=1) as ob:
        await ob.put("s1", 1, "in_progress", day=DAY, ts=0.0)
        last = ob.last_seq
        batch = [
            FeedbackDraft(stream_id="s1", version=1, status="done", day=DAY, ts=1.0),
            FeedbackDraft(stream_id="new", version=1, status="in_progress", day=DAY, ts=1.0),
        ]
        with pytest.raises(OutboxFull):
            await ob.put_many(batch)
        assert ob.depth() == 1 and ob.last_seq == last
        assert [r.status for r in await ob.peek(10)] == ["in_progress"]


async def test_oldest_age_counts_from_the_first_put(tmp_path: Path) -> None:
    now = [1000.0]
    async with await Outbox.open(tmp_path / "o.db", "a", clock=lambda: now[0]) as ob:
        assert await ob.oldest_age_s() == 0.0
        await ob.put("s1", 1, "in_progress", day=DAY, ts=1.0)
        now[0] += 30
        await ob.put("s1", 1, "in_progress", day=DAY, ts=2.0)  # coalesced: still the old row
        assert await ob.oldest_age_s() == 30.0


async def test_another_agents_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    async with await Outbox.open(path, "agent-1"):
        pass
    with pytest.raises(OutboxMismatch, match="belongs to agent 'agent-1'"):
        await Outbox.open(path, "agent-2")


async def test_a_second_opener_is_refused_while_the_first_holds_it(outbox: Outbox) -> None:
    await outbox.put("s1", 1, "in_progress", day=DAY, ts=1.0)
    with pytest.raises(OutboxLocked, match="in use by another process"):
        await Outbox.open(outbox.path, "agent-1")


# -- corruption ------------------------------------------------------------------------------


async def filled_outbox(path: Path, n: int = 50) -> int:
    """Create an outbox with `n` unsent rows; returns the last seq."""
    async with await Outbox.open(path, "agent-1") as ob:
        await ob.put_many(
            [
                FeedbackDraft(stream_id=f"s{i}", version=1, status="in_progress", day=DAY, ts=1.0)
                for i in range(n)
            ]
        )
        return ob.last_seq


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def truncate_half(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def truncate_to_zero(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(0)


@pytest.mark.parametrize("damage", [random_bytes, truncate_half, truncate_to_zero])
async def test_corrupt_file_is_moved_aside_and_reported(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "o.db"
    last = await filled_outbox(path, n=500)
    damage(path)

    async with await Outbox.open(path, "agent-1") as ob:
        assert ob.recovered_from is not None
        assert ob.recovered_from.name.startswith("o.db.corrupt-")
        assert ob.recovered_from.exists()
        assert ob.recovery_message and "moved to" in ob.recovery_message
        assert ob.depth() == 0
        fresh = await ob.put("s1", 1, "in_progress", day=DAY, ts=2.0)
        assert fresh.seq > last  # the side file kept the high-water mark
    async with await Outbox.open(path, "agent-1") as ob:  # the fresh one is healthy
        assert ob.recovered_from is None and ob.depth() == 1


async def test_seq_stays_ahead_after_corruption_even_without_the_side_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.db"
    last = await filled_outbox(path)
    random_bytes(path)
    (tmp_path / "o.db.seq").unlink()
    async with await Outbox.open(path, "agent-1") as ob:
        assert ob.recovered_from is not None
        assert (await ob.put("s1", 1, "in_progress", day=DAY, ts=2.0)).seq > last  # time floor


# -- crash safety ----------------------------------------------------------------------------

CHILD = """
import asyncio, sys
from agent.outbox import Outbox
from events.feedback import StreamStats

async def main(path: str) -> None:
    ob = await Outbox.open(path, "agent-1", coalesce_window_s=1e9)
    i = 0
    while True:
        fb = await ob.put(f"s{i % 3}", 1, "in_progress", day="2025-06-01", ts=float(i),
                          stats=StreamStats(frames_decoded=1))
        print("P", fb.seq, flush=True)  # returned = on disk
        if i % 25 == 0:
            rows = await ob.claim(1000)
            print("C", rows[-1].seq, flush=True)
        i += 1

asyncio.run(main(sys.argv[1]))
"""


async def test_kill_9_mid_put_loses_nothing_that_was_returned(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    returned: list[int] = []
    claimed_top = 0
    async with asyncio.timeout(60):
        while len(returned) < 400:
            kind, seq = (await proc.stdout.readline()).split()
            if kind == b"P":
                returned.append(int(seq))
            else:
                claimed_top = int(seq)
    proc.kill()  # SIGKILL, mid-way through further puts
    await proc.wait()
    # Lines printed before the kill but not read yet; a last line without "\n" is incomplete.
    for line in (await proc.stdout.read()).split(b"\n")[:-1]:
        kind, seq = line.split()
        if kind == b"P":
            returned.append(int(seq))
        else:
            claimed_top = int(seq)

    async with await Outbox.open(path, "agent-1") as ob:
        assert ob.recovered_from is None
        rows = await ob.peek(10_000)
        total = sum(r.stats.frames_decoded for r in rows)
        assert len(returned) <= total <= len(returned) + 1  # at most the unprinted last put
        assert set(returned) <= {r.seq for r in rows}
        assert ob.last_seq >= max(returned)
        assert ob.claimed_seq >= claimed_top
        for s in ("s0", "s1", "s2"):  # claimed rows stay frozen after the crash
            fb = await ob.put(s, 1, "in_progress", day=DAY, ts=1e6, stats=frames(1))
            assert fb.seq > claimed_top
