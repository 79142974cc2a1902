"""The benchmark suite: every bench, issue 18's figures against their targets, and the CI guard.

    python bench/run.py                  every bench at full size (``make bench``): prints each
                                         bench's table and the figures, writes docs/performance.md
    python bench/run.py --quick          every bench at its --quick sizes (no document unless --doc)
    python bench/run.py --only a,b --update
                                         run these benches again at full size and write the
                                         document from them and the other benches' figures of
                                         the last full run (docs/performance.json)
    python bench/run.py --guard          the CI guard (``make bench-guard``, in ``make test``): the
                                         benches with guarded ratios, --quick, each ratio against
                                         bench/baseline.json; fails when one dropped by 30 % or
                                         more (bench/guard.py), or a bench failed
    python bench/run.py --write-baseline the guard's baseline (``make bench-baseline``): the lowest
                                         of --repeat quick runs of each guarded ratio (with
                                         --only: those benches' ratios, the others kept)

Each bench is a child process (``python bench/<name>.py --json [--quick]``) on its own
nats-server, one at a time. A bench that fails or prints no JSON is reported "not run" with the
reason (the guard then fails). Only ratios against a raw limit measured in the same run are
guarded, never absolute times: the machine is shared and its speed varies, the ratios much less.
A ratio that dropped is measured again before the guard fails, while the guard would still end
within ``GUARD_BUDGET_S`` (the best run counts).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil
from common import ROOT, Row, child_env, format_table, format_value
from guard import TOLERANCE, Verdict, compare, failed

from ops.runtime.natsd import find_nats_server

BENCH = ROOT / "bench"
BASELINE = BENCH / "baseline.json"
DOC = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "docs" / "performance.json"
"""Every figure of the last full run as JSON (written beside the document; ``--update`` reads
it to run some benches again and write both anew)."""
PY = ".venv/bin/python"
GUARD_BUDGET_S = 110.0
"""The guard measures a dropped ratio again only while it would still end within this."""


# ---- the benches ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    name: str
    guarded: bool = False
    """Has guarded ratios: runs in the CI guard."""
    quick_timeout_s: float = 300
    timeout_s: float = 4 * 3600
    args: tuple[str, ...] = ()

    def argv(self, quick: bool) -> list[str]:
        return [str(BENCH / f"{self.name}.py"), "--json", *(["--quick"] if quick else []),
                *self.args]  # fmt: skip

    def command(self, quick: bool) -> str:
        return " ".join([PY, f"bench/{self.name}.py", *(["--quick"] if quick else []), *self.args])


BENCHES = (
    Bench("append", guarded=True),
    Bench("distribute", guarded=True),
    Bench("outbox", guarded=True),
    Bench("replay", guarded=True),
    Bench("failover", guarded=True),
    Bench("commands", guarded=True),
    Bench("memory"),
    Bench("master"),
    Bench("stats"),
    # issue 16: 20k streams, 2k agents, 3 managers, 3 servers, 5 minutes, the master killed
    # half way (--quick: 2k streams, 200 agents, 30 s)
    Bench("fleet", quick_timeout_s=900, args=("--kill-master-at", "150")),
    Bench("analytics", quick_timeout_s=1800),
    Bench("accuracy", quick_timeout_s=1800),
)


@dataclass
class Result:
    bench: Bench
    quick: bool
    title: str = ""
    rows: list[Row] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def row(self, key: str = "", name: str = "") -> Row | None:
        for r in self.rows:
            if (key and r.key == key) or (name and r.name.strip() == name):
                return r
        return None

    def ratios(self) -> dict[str, float]:
        return {r.key: float(r.value) for r in self.rows
                if r.guard and r.key and isinstance(r.value, int | float)}  # fmt: skip


def run_bench(bench: Bench, quick: bool) -> Result:
    """Run one bench as a child process; its progress (stderr) goes through to ours."""
    result = Result(bench, quick)
    timeout = bench.quick_timeout_s if quick else bench.timeout_s
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *bench.argv(quick)], cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    tail: deque[str] = deque(maxlen=12)
    chunks: list[bytes] = []

    def relay() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            print(f"   {bench.name}: {line}", file=sys.stderr, flush=True)

    def collect() -> None:
        assert proc.stdout is not None
        chunks.append(proc.stdout.read())

    readers = [threading.Thread(target=f, daemon=True) for f in (relay, collect)]
    for reader in readers:
        reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        result.error = f"did not finish within {timeout:.0f} s"
        return result
    finally:
        for reader in readers:
            reader.join(10)
        result.seconds = time.perf_counter() - t0
    out = b"".join(chunks)
    if proc.returncode != 0:
        last = next((line for line in reversed(tail) if line.strip()), "")
        result.error = f"exit code {proc.returncode}: {last}"
        return result
    try:
        text = out.decode()
        start = text.rfind('{\n  "title"')  # the report, after anything else the bench printed
        data = json.loads(text[start:] if start > 0 else text)
        result.title = str(data["title"])
        result.rows = [Row(**r) for r in data["rows"]]
    except (ValueError, KeyError, TypeError) as exc:
        result.error = f"printed no report as JSON ({exc!r}): does it support --json?"
    return result


def run_all(benches: Sequence[Bench], quick: bool) -> list[Result]:
    results = []
    for bench in benches:
        print(f"== running {bench.command(quick)}", file=sys.stderr, flush=True)
        result = run_bench(bench, quick)
        results.append(result)
        if result.error:
            print(f"== {bench.name}: NOT RUN: {result.error}", flush=True)
        else:
            print(format_table(f"{result.title}  [{result.seconds:.0f} s]", result.rows),
                  flush=True)  # fmt: skip
    return results


# ---- issue 18's figures -----------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    figure: str
    baseline: str
    """The raw limit it is measured against in the same run ("—": an absolute figure)."""
    bench: str
    key: str = ""
    names: tuple[str, ...] = ()
    """Row names to look for when the bench gives its rows no key (the first found)."""
    target: float | None = None
    better: Literal["higher", "lower"] = "higher"
    target_text: str = ""
    before: str = ""
    """issue 18's measurement before the work."""
    versus: tuple[str, ...] = ()
    """Target = the value of this row of the same bench (names), e.g. the decode limit."""

    def judge(self, value: float, other: float | None) -> bool | None:
        target = other if self.versus else self.target
        if target is None:
            return None
        return value >= target if self.better == "higher" else value <= target


FIGURES = (
    Figure("`stream.create` end to end, 64 concurrent clients, 1 manager",
           "raw `js.publish_async` msgs/s", "commands", "commands.create.1", target=0.30,
           target_text="≥ 0.30", before="0.18–0.19 (6.8k–10.9k cmd/s)"),
    Figure("the same with 3 managers", "raw `js.publish_async` msgs/s", "commands",
           "commands.create.3", target=0.6, target_text="≥ 0.6", before="—"),
    Figure("the same with `request_id`, 1 manager", "raw `js.publish_async` msgs/s", "commands",
           "commands.request_id.1", target=0.25, target_text="≥ 0.25", before="0.09–0.10"),
    Figure("live 720p25 camera-like streams, decode + all analyzers: CPU per frame",
           "ffmpeg `-threads 1 -f null` CPU per frame", "analytics",
           names=("ratio all analyzers / ffmpeg",), target=1.03, better="lower",
           target_text="≤ 1.03× ffmpeg", before="1.10× ffmpeg"),
    Figure("live 720p25 streams per core held in real time, all analyzers",
           "ffmpeg `-re` streams held (the decode limit)", "analytics",
           names=("vigil streams held on one core, all analyzers",),
           versus=("ffmpeg -re streams held on one core",), target_text="= the decode limit",
           before="11–12 per core"),
    Figure("keyframe-only analysis mode, streams per core", "—", "analytics",
           names=("keyframes only, files played as live (MP4)",
                  "keyframes only, MPEG-TS cameras over TCP"),
           target=200, target_text="≥ 200", before="does not exist"),
    Figure("projection rebuild from zero, 1M events", "raw ordered consumer", "replay",
           "replay.rebuild", target=0.85, target_text="≥ 0.85", before="0.77–0.78"),
    Figure("cold manager start with 1M events (snapshot + tail)", "—", "replay",
           "replay.cold_start", target=1.0, better="lower", target_text="≤ 1 s",
           before="1.4–1.5 s"),
    Figure("outbox drain after an outage", "raw `publish_async`", "outbox", "outbox.drain",
           target=0.9, target_text="≥ 0.9", before="0.73–0.86"),
    Figure("place 100k pending streams on 10k agents (plan + decide + fenced append)", "—",
           "distribute", "distribute.total", target=2.0, better="lower", target_text="≤ 2 s",
           before="10k on 1k: 0.35 s"),
    Figure("manager RSS per projected stream, 1M streams", "—", "memory", "memory.per_stream",
           target=1.0, better="lower", target_text="≤ 1 KiB", before="0.87 KB at 100k"),
)  # fmt: skip


@dataclass
class Measured:
    figure: Figure
    value: str
    met: str
    reproduce: str


def measure_figures(results: Sequence[Result], quick: bool) -> list[Measured]:
    by_bench = {r.bench.name: r for r in results}
    out = []
    for f in FIGURES:
        result = by_bench.get(f.bench)
        reproduce = f"`{result.bench.command(quick)}`" if result else f"`{PY} bench/{f.bench}.py`"
        if result is None:
            out.append(Measured(f, "not run", "—", reproduce))
            continue
        if result.error:
            out.append(Measured(f, f"not run: {result.error}", "—", reproduce))
            continue
        row = result.row(f.key) if f.key else None
        for name in f.names:
            row = row or result.row(name=name)
        if row is None:
            out.append(Measured(f, "not reported by the bench", "—", reproduce))
            continue
        other_row = next((o for n in f.versus if (o := result.row(name=n))), None)
        other = other_row.value if other_row else None
        value = row.value
        shown = f"{format_value(value)} {row.unit}".strip()
        if other_row is not None:
            shown += f" (decode limit {format_value(other_row.value)})"
        if not isinstance(value, int | float) or (f.versus and not isinstance(other, int | float)):
            out.append(Measured(f, shown, "—", reproduce))
            continue
        verdict = f.judge(float(value), float(other) if isinstance(other, int | float) else None)
        met = "—" if verdict is None else ("met" if verdict else "**not met**")
        if quick:
            met = f"({met} at quick sizes)" if verdict is not None else met
        out.append(Measured(f, shown, met, reproduce))
    return out


def print_figures(measured: Sequence[Measured]) -> None:
    print("== issue 18's figures")
    width = max(len(m.figure.figure) for m in measured)
    for m in measured:
        print(f"  {m.figure.figure:<{width}}  {m.value}  target {m.figure.target_text or '—'}:"
              f" {m.met}")  # fmt: skip


# ---- the machine and the document -------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    with open("/proc/cpuinfo") as f:  # Linux: the model name
        cpu = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), cpu)  # fmt: skip
    try:
        nats = subprocess.run([find_nats_server(), "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()  # fmt: skip
    except Exception as exc:  # the figures stand without it
        nats = f"unknown ({exc})"
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
    except Exception:
        commit = "unknown"
    load = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": f"{psutil.cpu_count(logical=False)} physical, {psutil.cpu_count()} logical",
        "ram": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "nats-server": nats,
        "nats-py": _version("nats-py"),
        "msgspec": _version("msgspec"),
        "commit": commit or "unknown",
        "load average": " / ".join(f"{x:.1f}" for x in load) + " (1, 5, 15 min)",
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def document(results: Sequence[Result], measured: Sequence[Measured], before: dict[str, str],
             after: dict[str, str], quick: bool, started: str) -> str:  # fmt: skip
    mode = "`--quick` sizes (CI; not the issue's sizes)" if quick else "full sizes"
    lines = [
        "# Performance",
        "",
        f"Generated by `make bench` (`bench/run.py`) on {started}, {mode}: do not edit by hand,",
        "run it again. Every ratio is measured against its raw limit in the same run on the same",
        "nats-server (loopback, file storage, one replica); absolute figures depend on the machine.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {_cell(v)} |" for k, v in before.items()),
        f"| load average at the end | {after['load average']} |",
        "",
        "A load average above the core count means other work shared the machine: the absolute",
        "figures are then low, the ratios less affected.",
        "",
        "## Issue 18's figures",
        "",
        "| figure | baseline (same run) | measured | target | | before (issue 18) | reproduce |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in measured:
        f = m.figure
        lines.append(f"| {f.figure} | {f.baseline} | {_cell(m.value)} | {f.target_text} |"
                     f" {m.met} | {f.before} | {m.reproduce} |")  # fmt: skip
    notes = ROOT / "docs" / "performance-notes.md"
    if notes.exists():
        lines += ["", "Where a target is not met: the limit, the profile and why, in"
                  " [performance-notes.md](performance-notes.md)."]  # fmt: skip
    lines += [
        "",
        "## Every bench",
        "",
        "Each bench runs alone (`--json` for this document, `--quick` for small sizes); rows marked",
        "*guarded* are ratios the CI guard compares with `bench/baseline.json`.",
    ]
    for r in results:
        lines += ["", f"### {r.bench.name}: `{r.bench.command(quick)}`", ""]
        if r.error:
            lines.append(f"Not run: {_cell(r.error)}")
            continue
        lines += [f"{r.title} ({r.seconds:.0f} s)", "", "| | value | unit | note |",
                  "|---|---:|---|---|"]  # fmt: skip
        for row in r.rows:
            guard = " *(guarded)*" if row.guard else ""
            lines.append(f"| {_cell(row.name.strip())}{guard} | {format_value(row.value)} |"
                         f" {row.unit} | {_cell(row.note)} |")  # fmt: skip
    lines += [
        "",
        "## The CI guard",
        "",
        "`make bench-guard` (run by `make test`) runs the benches with guarded ratios at `--quick`",
        f"sizes and fails when a ratio dropped by {TOLERANCE:.0%} or more against",
        "`bench/baseline.json` (a dropped ratio is measured again first, while the guard would still",
        f"end within {GUARD_BUDGET_S:.0f} s), or a bench failed.",
        "Absolute times are never compared. After a deliberate change of a ratio, or on a new",
        "machine, write the baseline again: `make bench-baseline` (the lowest of 3 quick runs:",
        "the machine is shared, a ratio's spread between runs reaches 40 %, and the guard is",
        "there to catch a ratio that fell well below anything this machine showed).",
        "",
    ]
    return "\n".join(lines)


# ---- the guard and its baseline ---------------------------------------------------------------


def ratios_of(results: Sequence[Result]) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in results:
        out |= r.ratios()
    return out


def guard(benches: Sequence[Bench], baseline_path: Path,
          run: Callable[[Sequence[Bench], bool], list[Result]] = run_all) -> int:  # fmt: skip
    t0 = time.perf_counter()
    try:
        baseline = json.loads(baseline_path.read_text())["ratios"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"guard: cannot read the baseline {baseline_path} ({exc!r}): make bench-baseline")
        return 1
    results = run(benches, True)
    current = ratios_of(results)
    verdicts = compare(baseline, current)
    while True:  # a dropped ratio is measured again while the time allows (the best run counts)
        dropped = {v.key for v in verdicts if v.status == "dropped"}
        again = [r.bench for r in results if not r.error and dropped & set(r.ratios())]
        cost = sum(r.seconds for r in results if r.bench in again)
        if not again or time.perf_counter() - t0 + cost > GUARD_BUDGET_S:
            break
        print(f"guard: {', '.join(sorted(dropped))} dropped: measuring "
              f"{', '.join(b.name for b in again)} once more", flush=True)  # fmt: skip
        retried = run(again, True)
        for key, value in ratios_of(retried).items():
            current[key] = max(value, current.get(key, value))
        results = [next((x for x in retried if x.bench == r.bench), r) if r.bench in again
                   else r for r in results]  # fmt: skip
        verdicts = compare(baseline, current)
    print(f"== guard: ratios against {baseline_path.relative_to(ROOT)} (fails at a drop of"
          f" {TOLERANCE:.0%} or more)")  # fmt: skip
    for v in verdicts:
        print(f"  {v.describe()}")
    errors = [r for r in results if r.error]
    for r in errors:
        print(f"  bench {r.bench.name} FAILED: {r.error} (run: {r.bench.command(True)})")
    bad: list[Verdict] = failed(verdicts)
    took = time.perf_counter() - t0
    if bad or errors:
        print(f"guard: FAILED ({len(bad)} ratio(s), {len(errors)} bench(es)) in {took:.0f} s")
        return 1
    print(f"guard: ok, {len(verdicts)} ratios in {took:.0f} s")
    return 0


def write_baseline(benches: Sequence[Bench], path: Path, repeat: int, *, only: bool = False) -> int:
    """The lowest of ``repeat`` quick runs of each guarded ratio into ``path``. ``only`` (some
    benches named): their ratios replace theirs in the existing baseline, the others are kept."""
    kept: dict[str, Any] = {}
    if only:
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"cannot read the baseline {path} ({exc!r}): write it whole first")
            return 1
    runs: dict[str, list[float]] = {}
    for i in range(repeat):
        print(f"== baseline run {i + 1} of {repeat}", file=sys.stderr, flush=True)
        results = run_all(benches, True)
        errors = [r for r in results if r.error]
        if errors:
            for r in errors:
                print(f"bench {r.bench.name} FAILED: {r.error}")
            print("baseline not written")
            return 1
        for key, value in ratios_of(results).items():
            runs.setdefault(key, []).append(value)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    ratios = {k: round(min(v), 4) for k, v in runs.items()}
    spread = {k: [round(min(v), 4), round(max(v), 4)] for k, v in runs.items()}
    if only:
        ratios = {**kept.get("ratios", {}), **ratios}
        spread = {**kept.get("spread", {}), **spread}
        updated = {**kept.get("updated", {}), **dict.fromkeys(runs, now)}
    data: dict[str, Any] = {
        "about": "CI guard baseline: guarded ratios at --quick sizes, the lowest of several runs;"
                 " written by `make bench-baseline` (bench/run.py), read by `make bench-guard`",
        "made": kept.get("made", now) if only else now,
        "runs": repeat,
        "tolerance": TOLERANCE,
        "machine": kept.get("machine", machine()) if only else machine(),
        "ratios": dict(sorted(ratios.items())),
        "spread": dict(sorted(spread.items())),
    }  # fmt: skip
    if only:
        data["updated"] = dict(sorted(updated.items()))
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"baseline written to {path} ({len(runs)} ratios, the lowest of {repeat} runs)")
    return 0


# ---- the last run's figures --------------------------------------------------------------------


def save_results(path: Path, results: Sequence[Result], before: dict[str, str], started: str,
                 quick: bool) -> None:  # fmt: skip
    data = {
        "started": started,
        "quick": quick,
        "machine": before,
        "results": [{"bench": r.bench.name, "title": r.title, "seconds": round(r.seconds, 1),
                     "error": r.error, "rows": [asdict(row) for row in r.rows]}
                    for r in results],
    }  # fmt: skip
    path.write_text(json.dumps(data, indent=1) + "\n")


def load_results(path: Path) -> tuple[list[Result], dict[str, str], str]:
    data = json.loads(path.read_text())
    by_name = {b.name: b for b in BENCHES}
    results = []
    for item in data["results"]:
        bench = by_name.get(item["bench"])
        if bench is None:
            continue  # a bench since removed
        results.append(Result(bench, bool(data["quick"]), item["title"],
                              [Row(**row) for row in item["rows"]], item["error"],
                              float(item["seconds"])))  # fmt: skip
    return results, dict(data["machine"]), str(data["started"])


# ---- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--guard", action="store_true", help="the CI guard (quick, vs baseline)")
    mode.add_argument("--write-baseline", action="store_true", help="write bench/baseline.json")
    parser.add_argument("--quick", action="store_true", help="every bench at --quick sizes")
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--doc", type=Path, default=None,
                        help=f"write the document here (default {DOC.relative_to(ROOT)} for a"
                             " full run, none for --quick)")  # fmt: skip
    parser.add_argument("--update", action="store_true",
                        help=f"with --only: merge into {RESULTS.relative_to(ROOT)} and write the"
                             " document again")  # fmt: skip
    parser.add_argument("--baseline", type=Path, default=BASELINE)
    parser.add_argument("--repeat", type=int, default=3, help="runs for --write-baseline")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - {b.name for b in BENCHES}
    if unknown:
        parser.error(f"no such bench: {', '.join(sorted(unknown))}")
    benches = [b for b in BENCHES if not names or b.name in names]
    if args.guard or args.write_baseline:
        benches = [b for b in benches if b.guarded]
        if args.guard:
            return guard(benches, args.baseline)
        return write_baseline(benches, args.baseline, args.repeat, only=bool(names))

    started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    before = machine()
    if args.update:
        if not names or args.quick:
            parser.error("--update needs --only (and full sizes)")
        try:
            previous, before, first = load_results(RESULTS)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--update: cannot read {RESULTS} ({exc!r}): run make bench first")
        fresh = {r.bench.name: r for r in run_all(benches, False)}
        results = [fresh.pop(r.bench.name, r) for r in previous] + list(fresh.values())
        results.sort(key=lambda r: BENCHES.index(r.bench))
        started = f"{first} (updated {started}: {', '.join(names)})"
    else:
        results = run_all(benches, args.quick)
    measured = measure_figures(results, args.quick)
    print_figures(measured)
    doc = args.doc or (None if args.quick else DOC)
    if doc is not None:
        doc.write_text(document(results, measured, before, machine(), args.quick, started))
        print(f"written: {doc}")
        if not args.quick and (args.update or not names):
            save_results(RESULTS, results, before, started, args.quick)
            print(f"written: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
