"""How late the operator creates the Executions of many Schedules due at the same minute.

The issue's budget: 1,000 Schedules due at the same minute in the sandbox — every Execution
created, none twice, lag from the scheduled time to the Execution's creation p50 ≤ 1 s and
p99 ≤ 5 s, operator memory recorded.

As `operator_latency.py` does it: the sandbox runs in this process on a loop of its own in a
background thread; the operator runs as `koos operator` in a process of its own. One Template
of one trivial step is applied; once the operator has validated it (it is up and watching),
the fire is the start of the next whole UTC minute, or of the one after when fewer than
`--lead` seconds remain. Then `--schedules` Schedules with the cron expression "M H * * *"
of that minute are created over HTTPS, and the script waits until the operator has marked
every one Ready (so it has settled before the fire). The timestamps come from the sandbox
itself: a listener on its store records every Execution ADDED (its name, its
`koos.io/scheduled-time` and `time.time()` then) and when each Schedule's status records the
fire — no polling. The operator's peak RSS (VmHWM) is read just before the fire and at the
end. Everything is bounded: the setup by the fire time, the rest by the fire time +
`--deadline` seconds; past it the script reports what it has and exits 1. Usage:

    .venv/bin/python bench/schedule_fires.py [--schedules N] [--lead SECONDS]
        [--deadline SECONDS] [--operator-log FILE] [--write FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import attach_profiler, client, latency_row, start_operator, stop_operator

from koos_sandbox.app import SandboxThread
from koos_sandbox.audit import summarize
from koos_sandbox.store import Event

ROOT = Path(__file__).resolve().parents[1]
NS = "default"
GROUP = "koos.io"
API = f"/apis/{GROUP}/v1alpha1/namespaces/{NS}"
TEMPLATE = "bench-tick"
SCHEDULED_TIME = f"{GROUP}/scheduled-time"
BUDGET_P50, BUDGET_P99 = 1.0, 5.0


def parse_time(text: str) -> float:
    """RFC 3339 (as koos writes it, in UTC) → Unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Created:
    name: str
    schedule: str | None  # the owning Schedule
    scheduled: str | None  # its koos.io/scheduled-time annotation
    at: float  # time.time() when the store added it


@dataclass
class Recorder:
    """A store listener: runs on the sandbox's loop for every committed event."""

    expected: int
    fire: float = math.inf  # Unix seconds of the fire, set once known
    created: list[Created] = field(default_factory=list)  # every Execution ADDED, in order
    for_fire: int = 0  # of them, those of the fire (scheduled at or after it)
    ready: set[str] = field(default_factory=set)  # Schedules with Ready=True
    recorded: dict[str, float] = field(default_factory=dict)  # Schedule → status has the fire
    template_ready: threading.Event = field(default_factory=threading.Event)
    settled: threading.Event = field(default_factory=threading.Event)  # all Schedules Ready
    done: threading.Event = field(default_factory=threading.Event)  # all created and recorded
    events: Counter[str] = field(default_factory=Counter)  # plural → events in the namespace

    def __call__(self, event: Event) -> None:
        if event.namespace != NS:
            return
        self.events[event.key[1]] += 1
        if event.type == "DELETED":
            return
        now = time.time()
        meta = event.obj.get("metadata") or {}
        if event.key == (GROUP, "executions") and event.type == "ADDED":
            owner = next(
                (r["name"] for r in meta.get("ownerReferences") or [] if r["kind"] == "Schedule"),
                None,
            )
            scheduled = (meta.get("annotations") or {}).get(SCHEDULED_TIME)
            self.created.append(Created(meta["name"], owner, scheduled, now))
            if scheduled and parse_time(scheduled) >= self.fire:
                self.for_fire += 1
        elif event.key == (GROUP, "schedules"):
            name = meta["name"]
            status = event.obj.get("status") or {}
            conditions = status.get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                self.ready.add(name)
                if len(self.ready) >= self.expected:
                    self.settled.set()
            last = status.get("lastScheduleTime")
            if name not in self.recorded and last and parse_time(last) >= self.fire:
                self.recorded[name] = now
        elif event.key == (GROUP, "templates") and meta.get("name") == TEMPLATE:
            conditions = (event.obj.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                self.template_ready.set()
        if len(self.recorded) >= self.expected and self.for_fire >= self.expected:
            self.done.set()

    def fired(self) -> list[Created]:
        return [c for c in self.created if c.scheduled and parse_time(c.scheduled) >= self.fire]


def template() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Template",
        "metadata": {"name": TEMPLATE},
        "spec": {
            "description": "One trivial step, for the Schedule benchmark.",
            "steps": [{"name": "s0", "run": {"image": "busybox:1.36", "script": "true"}}],
        },
    }


def schedule(name: str, cron: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": {
            "schedule": cron,
            "executionTemplate": {"spec": {"templateRef": {"name": TEMPLATE}}},
        },
    }


def next_fire(now: float, lead: float) -> float:
    """The start of the next whole minute at least `lead` seconds away."""
    fire = (math.floor(now / 60) + 1) * 60.0
    while fire - now < lead:
        fire += 60
    return fire


def cron_at(fire: float) -> str:
    at = datetime.fromtimestamp(fire, UTC)
    return f"{at.minute} {at.hour} * * *"


@dataclass
class Setup:
    fire: float = 0.0
    cron: str = ""
    create_seconds: float = 0.0
    settled_before: float | None = None  # seconds between all Ready and the fire


async def create_all(
    kubeconfig: Path, count: int, lead: float, recorder: Recorder, setup: Setup
) -> None:
    """Apply the Template, wait until the operator has validated it, choose the fire, create
    `count` Schedules due then and wait (until the fire at most) for all to be Ready."""
    url, token, context = client(kubeconfig)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=16)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:
        async with http.post(f"{API}/templates", json=template()) as r:
            assert r.status == 201, await r.text()
        if not await asyncio.to_thread(recorder.template_ready.wait, 60):
            raise TimeoutError("the operator did not validate the Template within 60 s")
        setup.fire = next_fire(time.time(), lead)
        setup.cron = cron_at(setup.fire)
        recorder.fire = setup.fire

        async def create(i: int) -> None:
            body = schedule(f"bench-{i:04d}", setup.cron)
            async with http.post(f"{API}/schedules", json=body) as r:
                assert r.status == 201, await r.text()

        started = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(create(i) for i in range(count))),
            max(0.0, setup.fire - time.time()),
        )
        setup.create_seconds = time.perf_counter() - started
        if await asyncio.to_thread(recorder.settled.wait, max(0.0, setup.fire - time.time())):
            setup.settled_before = setup.fire - time.time()


def seconds(value: float) -> str:
    return f"{value:,.2f} s"


def row(what: str, values: list[float], budget: bool) -> str:
    return latency_row(what, values, seconds, (BUDGET_P50, BUDGET_P99) if budget else None)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a running process, in bytes, Linux only."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in status.splitlines()
        if line.startswith(("VmRSS:", "VmHWM:"))
    }


def mib(values: dict[str, int], key: str) -> str:
    return f"{values[key] / 2**20:.0f} MiB" if key in values else "n/a"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by a process, Linux only."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def by_kind(records: list[Any]) -> list[tuple[str, int]]:
    """Request counts by verb and resource, largest first."""
    return [
        (f"{verb} {resource}{f'/{sub}' if sub else ''}", n)
        for (verb, resource, sub), n in sorted(summarize(records).items(), key=lambda i: -i[1])
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument(
        "--lead", type=float, default=25.0, help="least seconds between choosing and the fire"
    )
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds after the fire to wait at most"
    )
    parser.add_argument("--operator-log", help="keep the operator's output in this file")
    parser.add_argument("--write", help="append the results as Markdown to this file")
    args = parser.parse_args()
    if args.schedules < 1:
        parser.error("--schedules must be at least 1")

    recorder = Recorder(expected=args.schedules)
    setup = Setup()
    runner = SandboxThread(crds=ROOT / "crds", jobs_mode="scripted")
    sandbox = runner.start()
    runner.run(sandbox.store.listeners.append, recorder)
    error = ""
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    cpu_before: float | None = None  # the operator's CPU seconds just before the fire
    sandbox_before: float | None = None  # this process's (the sandbox's): before and after
    sandbox_after: float | None = None
    cpu_after: float | None = None  # and at the end
    records: list[Any] = []
    hook_calls: Counter[str] = Counter()
    ended = time.time()
    with tempfile.TemporaryDirectory(prefix="koos-bench-") as tmp:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "kubeconfig")
        log_path = Path(args.operator_log or Path(tmp) / "operator.log")
        with open(log_path, "w") as log:
            operator = start_operator(kubeconfig, log)
        mark = 0
        try:
            asyncio.run(create_all(kubeconfig, args.schedules, args.lead, recorder, setup))
            # Just before the fire: the memory and CPU the operator has with every Schedule
            # known, and the request log position (past it, all requests are the operator's).
            time.sleep(max(0.0, setup.fire - 0.5 - time.time()))
            before = memory(operator.pid)
            cpu_before = cpu_seconds(operator.pid)
            sandbox_before = cpu_seconds(os.getpid())
            mark = runner.run(sandbox.requests.mark)
            hooks_before = Counter(sandbox.admission.calls)
            # KOOS_BENCH_PROFILE_FIRE=FILE: py-spy records the operator from the fire on.
            spy = attach_profiler(operator.pid, os.environ.get("KOOS_BENCH_PROFILE_FIRE"))
            # KOOS_BENCH_PROFILE_SANDBOX=FILE: and this process (the sandbox) too.
            spy_sandbox = attach_profiler(os.getpid(), os.environ.get("KOOS_BENCH_PROFILE_SANDBOX"))
            if not recorder.done.wait(max(0.0, setup.fire + args.deadline - time.time())):
                error = f"deadline of fire + {args.deadline:g} s passed"
            for recording in (spy, spy_sandbox):
                if recording is not None:
                    recording.send_signal(signal.SIGINT)
                    recording.wait(timeout=30)
            if operator.poll() is not None:
                error = f"the operator exited with {operator.returncode}"
        except Exception as failure:  # report what there is
            error = f"{type(failure).__name__}: {failure!r}"
        finally:
            after = memory(operator.pid)
            cpu_after = cpu_seconds(operator.pid)
            sandbox_after = cpu_seconds(os.getpid())
            ended = time.time()
            stop_operator(operator)
            if mark:
                records = runner.run(sandbox.requests.since, mark)
                hook_calls = Counter(sandbox.admission.calls) - hooks_before
            runner.stop()
        if error:
            tail = log_path.read_text().splitlines()[-20:]
            print("\n".join(["operator log (last lines):", *tail]), file=sys.stderr)

    fired = recorder.fired()
    lags = [c.at - parse_time(c.scheduled) for c in fired if c.scheduled]
    names = {c.name for c in recorder.created}
    pairs = {(c.schedule, c.scheduled) for c in fired}
    recorded = [t - setup.fire for t in recorder.recorded.values()]
    twice = len(recorder.created) - len(names) + len(fired) - len(pairs)
    everyone = len(pairs) == args.schedules and not twice
    when = datetime.fromtimestamp(setup.fire, UTC).strftime("%H:%M:%S") if setup.fire else "n/a"
    settled = (
        f"{setup.settled_before:.1f} s before the fire"
        if setup.settled_before is not None
        else f"**not** by the fire ({len(recorder.ready)} of {args.schedules} Ready)"
    )
    first = min((c.at for c in fired), default=ended)
    last = max((c.at for c in fired), default=ended)
    cpu_used = (
        f"{cpu_after - cpu_before:.1f} s"
        if cpu_before is not None and cpu_after is not None
        else "n/a"
    )
    writes = sum(1 for r in records if r.is_write)
    facts = {
        "Executions created for the fire": f"{len(fired)} of {args.schedules}",
        "Executions created in all (distinct names)": f"{len(recorder.created)} ({len(names)})",
        "distinct (Schedule, scheduled time) pairs": f"{len(pairs)}"
        + (f" — **{twice} created twice**" if twice else " — none twice"),
        f"{args.schedules} Schedules created in": seconds(setup.create_seconds),
        "all Schedules Ready": settled,
        "fire → first Execution created": seconds(first - setup.fire) if fired else "n/a",
        "fire → last Execution created": seconds(last - setup.fire) if fired else "n/a",
        "operator RSS just before the fire (peak so far)": f"{mib(before, 'VmRSS')} "
        f"({mib(before, 'VmHWM')})",
        "operator RSS at the end (peak, VmHWM)": f"{mib(after, 'VmRSS')} ({mib(after, 'VmHWM')})",
        "operator CPU, fire - 0.5 s → end": f"{cpu_used} in {ended - setup.fire + 0.5:.1f} s"
        if setup.fire
        else "n/a",
        "sandbox CPU (this process), fire - 0.5 s → end": (
            f"{sandbox_after - sandbox_before:.1f} s"
            if sandbox_before is not None and sandbox_after is not None
            else "n/a"
        ),
        "operator API requests, fire - 0.5 s → end": f"{len(records):,} ({writes:,} writes, "
        f"{sum(1 for r in records if r.code == 409)} conflicts)",
        "admission webhook calls, fire - 0.5 s → end": ", ".join(
            f"{name} {n:,}" for name, n in hook_calls.most_common()
        )
        or "none",
    }
    report = (
        f"\n## {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n\n"
        f"`{' '.join(['python', *sys.argv])}` — {args.schedules} Schedules `{setup.cron}` "
        f"(UTC) due at {when}, one Template of one step (Jobs succeed at once)\n\n"
        "| lag | count | p50 | p90 | p99 | max | budget p50 ≤ 1 s, p99 ≤ 5 s |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n"
        f"{row('scheduled time → Execution created', lags, True)}\n"
        f"{row('scheduled time → Schedule status records the fire', recorded, False)}\n\n"
        "| run | |\n| --- | ---: |\n"
        + "".join(f"| {k} | {v} |\n" for k, v in facts.items())
        + "\n| operator API requests from the fire, by verb and resource | count |\n"
        "| --- | ---: |\n" + "".join(f"| {what} | {n:,} |\n" for what, n in by_kind(records))
    )
    if error:
        report += f"\nIncomplete: {error}.\n"
    print(report)
    if args.write:
        with open(args.write, "a") as out:
            out.write(report)
    return 1 if error or not everyone else 0


if __name__ == "__main__":
    sys.exit(main())
