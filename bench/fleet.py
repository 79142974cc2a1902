"""Fleet simulator: thousands of simulated agents driving real managers on a 3-node cluster.

Starts a 3-node JetStream cluster (loopback), ``--managers`` real ``vigil manager`` processes
(R3 streams and buckets), and ``--agents`` simulated agents spread over ``--procs`` worker
processes. Each simulated agent speaks the real protocol: it registers on its own subject, sends
heartbeats at the interval it is told, polls on notify (and on a timer), reports every assigned
stream ``in_progress`` and then statistics deltas every feedback interval, through an outbox
with the real semantics (per-agent seq, ``Nats-Msg-Id: <agent>:<seq>``, retried with the same id
until acknowledged). Failures on demand: ``--crash K`` agents stop dead, ``--hang K`` keep their
connection but fall silent, ``--slow K`` answer late, ``--bad K`` send undecodable feedback.

It then creates ``--streams`` streams, waits for them to run, and measures a steady state for
``--duration`` seconds, printing: projection lag of each manager (events behind the log's end),
the master's tick time and every manager's CPU and memory, ``stream.get``/``stream.create``
latency p50/p99 from a steady probe, event and feedback rates. With ``--kill-master-at S`` it
kills the master ``S`` seconds into the steady state and prints how long until another leads and
how many streams moved (``churned``: should be 0).

Usage: python bench/fleet.py [--streams 20000] [--agents 2000] [--managers 3] [--duration 300]
                             [--kill-master-at 150] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
import orjson
import psutil
from common import Report, arguments
from nats.js import JetStreamContext

from events.codec import decode_event
from events.model import MasterElected
from ops.runtime.natsd import EmbeddedCluster, free_port

VIGIL = str(Path(sys.executable).parent / "vigil")
TOKEN = "fleet-bench"


# ---- a simulated agent (in worker processes) ---------------------------------------------------


class SimAgent:
    def __init__(self, nc: nats.NATS, name: str, capacity: int, mode: str) -> None:
        self.nc, self.name, self.capacity, self.mode = nc, name, capacity, mode
        self.agent_id = f"a-sim-{name}"
        self.hb_s, self.fb_s = 2.0, 2.0
        self.streams: dict[str, int] = {}  # stream_id → assignment version
        self.reported: set[tuple[str, int]] = set()
        self.seq = 0
        self.poll_now = asyncio.Event()
        self.started = asyncio.Event()
        self.pending: list[tuple[int, bytes]] = []  # the outbox: (seq, body) until acked

    async def run(self, stop: asyncio.Event) -> None:
        js = self.nc.jetstream(timeout=10)
        body = orjson.dumps({"name": self.name, "capacity": self.capacity,
                             "analytics": [{"name": "motion"}]})  # fmt: skip
        while True:
            try:
                msg = await self.nc.request(
                    f"vigil.agent.{self.agent_id}.register", body, timeout=10
                )
                reply = orjson.loads(msg.data)
                if reply.get("ok"):
                    self.hb_s = reply["result"]["heartbeat_interval_s"]
                    self.fb_s = reply["result"]["feedback_interval_s"]
                    break
            except Exception:
                pass
            await asyncio.sleep(1 + random.random())
        await self.nc.subscribe(f"vigil.agent.{self.agent_id}.notify", cb=self._notify)
        await asyncio.gather(self._beat(stop), self._poll(stop), self._feed(stop, js))

    async def _notify(self, _msg: object) -> None:
        self.poll_now.set()

    async def _beat(self, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.random() * self.hb_s)
        while not stop.is_set():
            if self.mode in ("crash", "hang"):
                return
            hb = {
                "ts": time.time(),
                "running": sorted(self.streams),
                "outbox_depth": len(self.pending),
            }
            await self.nc.publish(f"vigil.agent.{self.agent_id}.heartbeat", orjson.dumps(hb))
            await asyncio.sleep(self.hb_s)

    async def _poll(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.mode == "crash":
                return
            try:
                await asyncio.wait_for(self.poll_now.wait(), 5 + random.random() * 5)
            except TimeoutError:
                pass
            self.poll_now.clear()
            if self.mode == "hang":
                continue
            if self.mode == "slow":
                await asyncio.sleep(2)
            try:
                msg = await self.nc.request(f"vigil.agent.{self.agent_id}.streams",
                                            orjson.dumps({"running": sorted(self.streams)}),
                                            timeout=10)  # fmt: skip
                reply = orjson.loads(msg.data)
            except Exception:
                continue
            if reply.get("ok"):
                self.streams = {a["stream_id"]: a["version"] for a in reply["result"]["start"]}
                if any((sid, v) not in self.reported for sid, v in self.streams.items()):
                    self.started.set()  # like a real agent: "in_progress" once it decodes

    def _queue(self, stream_id: str, version: int, status: str, frames: int) -> None:
        self.seq += 1
        body = {"seq": self.seq, "stream_id": stream_id, "version": version, "status": status,
                "ts": time.time(), "stats": {"frames_decoded": frames, "frames_analysed": frames,
                                             "bytes_read": frames * 4000, "processing_ms": 1000}}  # fmt: skip
        self.pending.append((self.seq, b"{" if self.mode == "bad" else orjson.dumps(body)))

    async def _feed(self, stop: asyncio.Event, js: object) -> None:
        await asyncio.sleep(random.random() * self.fb_s)
        while not stop.is_set():
            if self.mode in ("crash", "hang"):
                return
            for sid, version in list(self.streams.items()):
                first = (sid, version) not in self.reported
                self.reported.add((sid, version))
                self._queue(sid, version, "in_progress", 0 if first else int(25 * self.fb_s))
            while self.pending:  # in seq order, the same msg id until acked
                seq, body = self.pending[0]
                try:
                    await js.publish(f"vigil.feedback.{self.agent_id}", body,  # type: ignore[attr-defined]
                                     headers={"Nats-Msg-Id": f"{self.agent_id}:{seq}"})  # fmt: skip
                    self.pending.pop(0)
                except Exception:
                    await asyncio.sleep(1)
                    break
            with contextlib.suppress(TimeoutError):  # the next period, or a new stream started
                await asyncio.wait_for(self.started.wait(), self.fb_s)
            self.started.clear()


def worker(
    url: str, names: list[str], capacity: int, modes: dict[str, str], seconds: float
) -> None:
    async def main() -> None:
        nc = await nats.connect(url.split(","), max_reconnect_attempts=-1,
                                pending_size=64 * 1024 * 1024)  # fmt: skip
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        agents = [SimAgent(nc, n, capacity, modes.get(n, "ok")) for n in names]
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        await asyncio.wait([asyncio.create_task(stop.wait())], timeout=seconds)
        stop.set()
        for t in tasks:
            t.cancel()
        await nc.close()

    asyncio.run(main())


# ---- the bench --------------------------------------------------------------------------------


async def metrics(port: int, query: str = "?streams=0&agents=0") -> dict[str, float]:
    """The fleet-level figures of a manager (the per-stream and per-agent series left out: this
    bench reads every 5 s; a full scrape is measured once, ``full_scrape``)."""
    import aiohttp

    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics{query}",
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:  # fmt: skip
            for line in (await r.text()).splitlines():
                if line.startswith("#") or " " not in line:
                    continue
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
    return out


async def _next_election(js: JetStreamContext, killed_at: float) -> float:
    """Seconds from the kill to the next ``MasterElected`` (its own time: the moment a new master
    holds the lease and its election is in the log, not when this bench's polling noticed)."""
    first = await _election(js)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        event = await _election(js)
        if event is not None and (first is None or event.epoch > first.epoch):
            return event.at - killed_at
        await asyncio.sleep(0.05)
    return float("nan")


async def _election(js: JetStreamContext) -> MasterElected | None:
    with contextlib.suppress(Exception):
        msg = await js.get_last_msg("VIGIL_EVENTS", "vigil.evt.master")
        event = decode_event(msg.data or b"")
        if isinstance(event, MasterElected):
            return event
    return None


async def full_scrape(port: int) -> tuple[float, int]:
    """One complete ``/metrics`` (every per-stream and per-agent series): seconds, bytes."""
    import aiohttp

    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/metrics",
                            headers={"Authorization": f"Bearer {TOKEN}"}) as r:  # fmt: skip
            size = len(await r.read())
    return time.perf_counter() - t0, size


async def probe(nc: nats.NATS, seconds: float, rate: float, lat: dict[str, list[float]]) -> None:
    """Open loop: each request leaves at its scheduled time in its own task, and its latency is
    counted from that time (a slow or lost reply delays no other request)."""
    t0 = time.perf_counter()
    sids: list[str] = []

    async def one(i: int, at: float) -> None:
        kind = "create" if i % 10 == 0 or not sids else "get"
        body = ({"source": {"url": f"rtsp://10.200.{i // 256 % 256}.{i % 256}/probe{i}"}}
                if kind == "create" else {"stream_id": random.choice(sids)})  # fmt: skip
        try:
            msg = await nc.request(f"vigil.cmd.stream.{kind}", orjson.dumps(body), timeout=10)
            reply = orjson.loads(msg.data)
            if kind == "create" and reply.get("ok"):
                sids.append(reply["result"]["stream_id"])
            lat[kind].append(time.perf_counter() - at)
        except Exception:
            lat[kind].append(10.0)  # no answer within 10 s

    tasks: list[asyncio.Task[None]] = []
    i = 0
    while time.perf_counter() - t0 < seconds:
        i += 1
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, at)))
    await asyncio.gather(*tasks)


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def run(args: object, report: Report) -> None:
    a = args  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedCluster(Path(tmp) / "cluster", 3, advisories=True) as cluster:
            env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
            env |= {"VIGIL_NATS_URL": cluster.url, "VIGIL_REPLICAS": "3", "VIGIL_API_TOKEN": TOKEN,
                    "VIGIL_FEEDBACK_INTERVAL_S": str(a.feedback_s), "VIGIL_STREAM_STALENESS_S": "120",
                    "VIGIL_AGENT_DOWNGRADE_S": "20", "VIGIL_HEARTBEAT_INTERVAL_S": "5",
                    "VIGIL_MASTER_LEASE_S": "5", "VIGIL_DATA_DIR": tmp}  # fmt: skip
            ports = [free_port() for _ in range(a.managers)]
            managers = []
            for port in ports:
                logfile = open(Path(a.logs) / f"manager-{port}.log", "wb")  # noqa: ASYNC230
                proc = await asyncio.create_subprocess_exec(
                    VIGIL, "manager", "--http", f"127.0.0.1:{port}", env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=logfile)  # fmt: skip
                await asyncio.wait_for(proc.stdout.readline(), 300)  # type: ignore[union-attr]
                managers.append(proc)
                say(f"manager on :{port} ready")
            nc = await nats.connect(cluster.url.split(","))
            names = [f"{i:05}" for i in range(a.agents)]
            bad = names[: a.crash + a.hang + a.slow + a.bad]
            modes = {n: "crash" for n in bad[: a.crash]}
            modes |= {n: "hang" for n in bad[a.crash : a.crash + a.hang]}
            modes |= {n: "slow" for n in bad[a.crash + a.hang : a.crash + a.hang + a.slow]}
            modes |= {n: "bad" for n in bad[a.crash + a.hang + a.slow :]}
            capacity = a.streams // max(a.agents - a.crash - a.hang, 1) + 2
            total = a.duration + 600
            ctx = mp.get_context("spawn")
            workers = [ctx.Process(target=worker, args=(cluster.url, names[i :: a.procs], capacity,
                                                        modes, total)) for i in range(a.procs)]  # fmt: skip
            for w in workers:
                w.start()
            say(f"{a.agents} simulated agents in {a.procs} processes")
            live = a.agents - a.crash - a.hang
            while True:  # until the agents have registered (streams need an agent offering motion)
                with _quiet():
                    m = await metrics(ports[0])
                    if m.get('vigil_agents{status="ready"}', 0) >= live:
                        break
                await asyncio.sleep(1)
            say(f"agents registered; creating {a.streams} streams")
            t0 = time.perf_counter()
            created = 0
            sem = asyncio.Semaphore(64)

            async def create(i: int) -> None:
                nonlocal created
                async with sem:
                    body = {"source": {"url": f"rtsp://10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/cam{i}"}, "request_id": f"fleet-{i}",
                            "analytics": [{"name": "motion"}]}  # fmt: skip
                    while True:
                        try:
                            msg = await nc.request(
                                "vigil.cmd.stream.create", orjson.dumps(body), timeout=30
                            )
                            if orjson.loads(msg.data).get("ok"):
                                created += 1
                                if created % 1000 == 0:
                                    say(f"{created} created")
                                return
                        except Exception:
                            pass
                        await asyncio.sleep(1)

            await asyncio.gather(*(create(i) for i in range(a.streams)))
            report.add("create all streams", time.perf_counter() - t0, "s",
                       f"{a.streams / (time.perf_counter() - t0):,.0f} cmd/s")  # fmt: skip
            t1 = time.perf_counter()
            while time.perf_counter() - t1 < 600:  # until (almost) nothing waits any more
                with _quiet():
                    msg = await nc.request("vigil.cmd.stream.list",
                                           b'{"status": "pending", "limit": 1000}', timeout=30)  # fmt: skip
                    page = orjson.loads(msg.data)
                    # Streams on agents that never start them (bad feedback) stay pending.
                    stuck = a.streams // 100 + a.bad * capacity
                    if page.get("ok") and len(page["result"]["streams"]) <= stuck:
                        break
                await asyncio.sleep(2)
            report.add("until streams run", time.perf_counter() - t1, "s")
            say("streams running; measuring the steady state")

            js = nc.jetstream()
            ev0 = (await js.stream_info("VIGIL_EVENTS")).state.last_seq
            fb0 = (await js.stream_info("VIGIL_FEEDBACK")).state.last_seq
            pids = [psutil.Process(p.pid) for p in managers]
            for p in pids:
                p.cpu_percent(None)
            lat: dict[str, list[float]] = {"get": [], "create": []}
            lags: list[float] = []
            ticks: list[float] = []
            killed = None
            churn_from = None
            took = None
            steady0 = time.perf_counter()
            probe_task = asyncio.create_task(probe(nc, a.duration, 20.0, lat))
            scrape: tuple[float, int] | None = None
            while time.perf_counter() - steady0 < a.duration:
                await asyncio.sleep(5)
                if scrape is None:
                    scrape = await full_scrape(ports[-1])
                end = (await js.stream_info("VIGIL_EVENTS")).state.last_seq
                for i, port in enumerate(ports):
                    if killed is not None and i == killed:
                        continue
                    try:
                        m = await metrics(port)
                    except Exception:
                        continue
                    lags.append(end - m.get("vigil_event_seq", 0))
                    if m.get("vigil_master") == 1:
                        ticks.append(m.get("vigil_master_last_tick_seconds", 0))
                if (a.kill_master_at and killed is None
                        and time.perf_counter() - steady0 >= a.kill_master_at):  # fmt: skip
                    for i, port in enumerate(ports):
                        if (await metrics(port)).get("vigil_master") == 1:
                            managers[i].send_signal(signal.SIGKILL)
                            killed = i
                            break
                    killed_at = time.time()
                    say(f"master on :{ports[killed or 0]} killed")
                    churn_from = (await js.stream_info("VIGIL_EVENTS")).state.last_seq
                    took = await _next_election(js, killed_at)
                    say(f"new master {took:.2f} s after the kill (its election event's time)")
            await probe_task
            seconds = time.perf_counter() - steady0
            ev1 = (await js.stream_info("VIGIL_EVENTS")).state.last_seq
            fb1 = (await js.stream_info("VIGIL_FEEDBACK")).state.last_seq
            report.add("steady state", seconds, "s", f"{a.streams:,} streams, {a.agents:,} agents,"
                       f" {a.managers} managers, 3 nats-servers")  # fmt: skip
            report.add("projection lag (max)", max(lags or [0]), "events",
                       f"median {statistics.median(lags or [0]):.0f}")  # fmt: skip
            report.add("master tick (max seen)", max(ticks or [0]) * 1e3, "ms",
                       "the last tick's duration, read every 5 s from each master")  # fmt: skip
            for i, p in enumerate(pids):
                if killed is not None and i == killed:
                    continue
                with _quiet():
                    report.add(f"manager {i} CPU", p.cpu_percent(None), "%",
                               f"RSS {p.memory_info().rss / 2**20:.0f} MiB")  # fmt: skip
            report.add("stream.get p50 / p99", pct(lat["get"], 0.5) * 1e3, "ms",
                       f"p99 {pct(lat['get'], 0.99) * 1e3:.1f} ms")  # fmt: skip
            report.add("stream.create p50 / p99", pct(lat["create"], 0.5) * 1e3, "ms",
                       f"p99 {pct(lat['create'], 0.99) * 1e3:.1f} ms")  # fmt: skip
            if scrape is not None:
                report.add("full /metrics scrape", scrape[0], "s",
                           f"{scrape[1] / 2**20:.1f} MiB: every per-stream and per-agent series,"
                           " formatted off the event loop")  # fmt: skip
            report.add("events", (ev1 - ev0) / seconds, "/s")
            report.add("feedback", (fb1 - fb0) / seconds, "msg/s")
            if killed is not None:
                report.add("master kill → new master", took if took is not None else float("nan"),
                           "s", "target: lease (5 s) + 1 s")  # fmt: skip
                churned, why = await _churned(nc, churn_from or 0)
                report.add("streams churned after the kill", churned, "",
                           f"target 0{'; ' + why if why else ''}")  # fmt: skip
            for w in workers:
                if w.pid:
                    os.kill(w.pid, signal.SIGTERM)
            for w in workers:
                w.join(30)
            for proc in managers:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in managers:
                await proc.wait()
            await nc.close()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


async def _churned(nc: nats.NATS, after: int) -> tuple[int, str]:
    """Streams requeued after sequence ``after`` (a master change should move none of them),
    and why: the reasons and the deciding epochs, with the agents downgraded meanwhile."""
    from collections import Counter

    from events.jetstream import JetStreamStore
    from events.model import AgentDowngraded, StreamRequeued

    moved: set[str] = set()
    why: Counter[str] = Counter()
    for_agents: Counter[str] = Counter()
    async for e in JetStreamStore(nc).read_all(after + 1):
        if isinstance(e.event, StreamRequeued):
            moved.add(e.event.stream_id)
            why[f"{e.event.reason.split(':')[0]} (epoch {e.event.cause.epoch})"] += 1
        elif isinstance(e.event, AgentDowngraded):
            for_agents[f"epoch {e.event.cause.epoch}"] += 1
    detail = ", ".join(f"{n} {k}" for k, n in why.most_common(4))
    if for_agents:
        detail += "; agents downgraded: " + ", ".join(f"{n} by {k}" for k, n in for_agents.items())
    return len(moved), detail


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--streams", type=int, default=20_000)
    parser.add_argument("--agents", type=int, default=2_000)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2, help="worker processes for the agents")
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--feedback-s", type=float, default=10.0)
    parser.add_argument("--kill-master-at", type=float, default=None)
    parser.add_argument("--logs", default=tempfile.gettempdir() + "/vigil-fleet-logs",
                        help="the managers' logs go here")  # fmt: skip
    for failure in ("crash", "hang", "slow", "bad"):
        parser.add_argument(f"--{failure}", type=int, default=0, help=f"agents that {failure}")
    args = parser.parse_args()
    if args.quick:
        args.streams, args.agents, args.duration = 2_000, 200, 30.0
        args.kill_master_at = 15.0  # half way, as at full size
    Path(args.logs).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
    report = Report("fleet simulator on a 3-node cluster")
    await run(args, report)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
