"""How fast the operator starts Jobs with many Executions in flight, against the sandbox.

The issue's budget: with 100 Executions in flight, "Execution created → first Job created"
and "Job completed → next Job created" within p50 ≤ 50 ms and p99 ≤ 250 ms.

The sandbox runs in this process on a loop of its own in a background thread (its Jobs
scripted to run `--step-seconds` each, so that every Execution really is in flight at once);
the operator runs as `koos operator` in a process of its own, so the two do not share one
CPU-bound event loop. One Template of `--steps` linear steps is applied, then `--executions`
Executions are created as fast as possible over HTTPS. The timestamps come from the sandbox
itself: a listener on its store records when each Execution and Job is added and when each
Job first gets its Complete condition — no polling. Everything is bounded by `--deadline`:
past it, the script reports what it has and exits 1. Usage:

    .venv/bin/python bench/operator_latency.py [--executions N] [--steps S]
        [--step-seconds T] [--rate PER_SECOND] [--deadline SECONDS] [--operator-log FILE]
        [--write FILE]

`--rate` paces the creates; with Little's law, rate * steps * step-seconds Executions are in
flight (17/s * 3 * 2 s, about 100). Without it, all are created at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import client, latency_row, start_operator, stop_operator

from koos_sandbox.app import SandboxThread
from koos_sandbox.audit import summarize
from koos_sandbox.store import Event

ROOT = Path(__file__).resolve().parents[1]
NS = "default"
GROUP = "koos.io"
API = f"/apis/{GROUP}/v1alpha1/namespaces/{NS}"
TEMPLATE = "bench-linear"
TERMINAL = ("Succeeded", "Failed", "Cancelled")
BUDGET_P50, BUDGET_P99 = 0.050, 0.250


@dataclass
class Recorder:
    """A store listener: runs on the sandbox's loop for every committed event."""

    expected: int
    created: dict[str, float] = field(default_factory=dict)  # execution → added
    job_added: dict[tuple[str, str], float] = field(default_factory=dict)  # (execution, step)
    job_complete: dict[tuple[str, str], float] = field(default_factory=dict)
    finished: dict[str, tuple[str, float]] = field(default_factory=dict)  # → (phase, when)
    template_ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    events: dict[str, int] = field(default_factory=dict)  # plural → events in the namespace

    def __call__(self, event: Event) -> None:
        if event.namespace != NS:
            return
        self.events[event.key[1]] = self.events.get(event.key[1], 0) + 1
        if event.type == "DELETED":
            return
        now = time.monotonic()
        meta = event.obj.get("metadata") or {}
        if event.key == (GROUP, "executions"):
            name = meta["name"]
            if event.type == "ADDED":
                self.created.setdefault(name, now)
            phase = (event.obj.get("status") or {}).get("phase")
            if phase in TERMINAL and name not in self.finished:
                self.finished[name] = (phase, now)
                if len(self.finished) >= self.expected:
                    self.done.set()
        elif event.key == ("batch", "jobs"):
            step = (meta.get("labels") or {}).get(f"{GROUP}/step")
            owner = next(
                (r["name"] for r in meta.get("ownerReferences") or [] if r["kind"] == "Execution"),
                None,
            )
            if step is None or owner is None:
                return
            key = (owner, step)
            if event.type == "ADDED":
                self.job_added.setdefault(key, now)
            elif key not in self.job_complete and is_complete(event.obj):
                self.job_complete[key] = now
        elif event.key == (GROUP, "templates") and meta.get("name") == TEMPLATE:
            conditions = (event.obj.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                self.template_ready.set()


def is_complete(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions)


def template(steps: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Template",
        "metadata": {"name": TEMPLATE},
        "spec": {
            "description": "A linear runbook for the latency benchmark.",
            "steps": [
                {
                    "name": f"s{k}",
                    **({"dependsOn": [f"s{k - 1}"]} if k else {}),
                    "run": {"image": "busybox:1.36", "script": "true"},
                }
                for k in range(steps)
            ],
        },
    }


def execution(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Execution",
        "metadata": {"name": name},
        "spec": {"templateRef": {"name": TEMPLATE}},
    }


async def create_all(
    kubeconfig: Path,
    steps: int,
    count: int,
    recorder: Recorder,
    deadline: float,
    before: Callable[[], object],
    rate: float = 0.0,
) -> float:
    """Apply the Template, wait until the operator has validated it (so it is up and
    watching), call `before`, then create `count` Executions — at once, or `rate` per second
    (the load generator's pace) — and return the seconds the creates took."""
    url, token, context = client(kubeconfig)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=16)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:
        async with http.post(f"{API}/templates", json=template(steps)) as r:
            assert r.status == 201, await r.text()
        ready = await asyncio.to_thread(
            recorder.template_ready.wait, max(0.0, deadline - time.monotonic())
        )
        if not ready:
            raise TimeoutError("the operator did not validate the Template before the deadline")

        async def create(i: int) -> None:
            async with http.post(f"{API}/executions", json=execution(f"bench-{i:04d}")) as r:
                assert r.status == 201, await r.text()

        async def paced(i: int) -> None:
            await asyncio.sleep(started + i / rate - time.perf_counter())
            await create(i)

        before()
        started = time.perf_counter()
        await asyncio.gather(*((paced(i) if rate else create(i)) for i in range(count)))
        return time.perf_counter() - started


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def row(what: str, values: list[float], budget: bool) -> str:
    return latency_row(what, values, ms, (BUDGET_P50, BUDGET_P99) if budget else None)


def in_flight(recorder: Recorder) -> int:
    """The most Executions created and not yet finished at any one time."""
    moments = [(t, 1) for t in recorder.created.values()]
    moments += [(t, -1) for _, t in recorder.finished.values()]
    most = current = 0
    for _, change in sorted(moments, key=lambda m: (m[0], m[1])):
        current += change
        most = max(most, current)
    return most


def by_kind(records: list[Any]) -> list[tuple[str, int]]:
    """Request counts by verb and resource, largest first; the few start-up requests
    (discovery, lists, watches, webhook configurations: fewer than 10 of a kind) summed."""
    rows, few = [], 0
    for (verb, resource, sub), n in sorted(summarize(records).items(), key=lambda i: -i[1]):
        if n < 10:
            few += n
        else:
            rows.append((f"{verb} {resource}{f'/{sub}' if sub else ''}", n))
    return [*rows, ("other (start-up: discovery, lists, watches, webhooks)", few)] if few else rows


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used so far (user + system) by the whole machine, the operator's process
    and this one (the sandbox and the client), Linux only."""

    wall: float
    machine: float
    operator: float
    here: float

    @staticmethod
    def now(operator: int) -> Cpu | None:
        tick = os.sysconf("SC_CLK_TCK")
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
            stat = Path(f"/proc/{operator}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
        busy = user + nice + system + irq + softirq + steal
        return Cpu(
            time.monotonic(),
            busy / tick,
            (int(stat[11]) + int(stat[12])) / tick,
            time.process_time(),
        )

    def since(self, start: Cpu) -> str:
        operator, here = self.operator - start.operator, self.here - start.here
        others = max(0.0, self.machine - start.machine - operator - here)
        return (
            f"operator {operator:.1f} s, sandbox + client {here:.1f} s, other processes "
            f"{others:.1f} s, in {self.wall - start.wall:.1f} s"
        )


def peak_rss(pid: int) -> int | None:
    """VmHWM of a running process, in bytes, Linux only."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next(
        (int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")),
        None,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3, help="linear steps per Execution")
    parser.add_argument("--step-seconds", type=float, default=0.5, help="each Job runs this long")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="create the Executions at this many per second (default: all at once)",
    )
    parser.add_argument("--deadline", type=float, default=120.0, help="seconds for the whole run")
    parser.add_argument("--operator-log", help="keep the operator's output in this file")
    parser.add_argument("--write", help="append the results as Markdown to this file")
    args = parser.parse_args()
    if args.executions < 1 or args.steps < 1:
        parser.error("--executions and --steps must be at least 1")

    deadline = time.monotonic() + args.deadline
    recorder = Recorder(expected=args.executions)
    runner = SandboxThread(crds=ROOT / "crds", jobs_mode="scripted")
    sandbox = runner.start()
    runner.run(sandbox.store.listeners.append, recorder)
    runner.run(lambda: sandbox.jobs.script(duration=args.step_seconds))
    error = ""
    peak: int | None = None
    cpu: list[Cpu | None] = []  # when the creates start, when the run ends
    create_seconds = 0.0
    ended = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="koos-bench-") as tmp:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "kubeconfig")
        log_path = Path(args.operator_log or Path(tmp) / "operator.log")
        mark = runner.run(sandbox.requests.mark)
        with open(log_path, "w") as log:
            operator = start_operator(kubeconfig, log)
        try:
            create_seconds = asyncio.run(
                create_all(
                    kubeconfig,
                    args.steps,
                    args.executions,
                    recorder,
                    deadline,
                    lambda: cpu.append(Cpu.now(operator.pid)),
                    args.rate,
                )
            )
            if not recorder.done.wait(max(0.0, deadline - time.monotonic())):
                error = f"deadline of {args.deadline:g} s passed"
            if operator.poll() is not None:
                error = f"the operator exited with {operator.returncode}"
        except Exception as failure:  # report what there is
            error = f"{type(failure).__name__}: {failure}"
        finally:
            peak = peak_rss(operator.pid)
            cpu.append(Cpu.now(operator.pid))
            ended = time.monotonic()
            stop_operator(operator)
            records = runner.run(sandbox.requests.since, mark)
            runner.stop()
        if error:
            tail = log_path.read_text().splitlines()[-20:]
            print("\n".join(["operator log (last lines):", *tail]), file=sys.stderr)

    first_job = [
        recorder.job_added[(name, "s0")] - created
        for name, created in recorder.created.items()
        if (name, "s0") in recorder.job_added
    ]
    next_job = [
        recorder.job_added[(name, f"s{k}")] - recorder.job_complete[(name, f"s{k - 1}")]
        for name in recorder.created
        for k in range(1, args.steps)
        if (name, f"s{k}") in recorder.job_added and (name, f"s{k - 1}") in recorder.job_complete
    ]
    last = f"s{args.steps - 1}"
    to_finish = [
        when - recorder.job_complete[(name, last)]
        for name, (_, when) in recorder.finished.items()
        if (name, last) in recorder.job_complete
    ]
    succeeded = sum(1 for phase, _ in recorder.finished.values() if phase == "Succeeded")
    first = min(recorder.created.values(), default=ended)
    if len(recorder.finished) == args.executions:
        wall = f"{max(t for _, t in recorder.finished.values()) - first:.2f} s"
    else:
        wall = f"{ended - first:.2f} s, and {args.executions - len(recorder.finished)} not finished"
    ours = [
        r for r in records if not (r.verb == "create" and r.resource in ("executions", "templates"))
    ]
    conflicts = sum(1 for r in ours if r.code == 409)
    writes = sum(1 for r in ours if r.is_write)
    per = max(1, len(recorder.created))

    others = len(recorder.finished) - succeeded
    facts = {
        "Executions Succeeded": f"{succeeded} of {args.executions}"
        + (f" ({others} other terminal)" if others else ""),
        "most Executions in flight at once": str(in_flight(recorder)),
        f"{args.executions} creates took": f"{create_seconds:.2f} s",
        "wall time, first create → last finished": wall,
        "operator peak RSS (VmHWM)": f"{peak / 2**20:.0f} MiB" if peak is not None else "n/a",
        "CPU used, first create → last finished": (
            cpu[1].since(cpu[0]) if len(cpu) == 2 and cpu[0] and cpu[1] else "n/a"
        ),
        "store events (the operator watches Executions and Jobs, not Pods)": ", ".join(
            f"{recorder.events.get(p, 0):,} {p}" for p in ("executions", "jobs", "pods")
        )
        + f" ({sum(recorder.events.get(p, 0) for p in ('executions', 'jobs', 'pods')) / per:.1f}"
        " per Execution)",
        "operator API requests": f"{len(ours):,} ({len(ours) / per:.1f} per Execution; "
        f"{writes:,} writes, {conflicts} conflicts)",
    }
    report = (
        f"\n## {time.strftime('%Y-%m-%d')} — {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n\n"
        f"`{' '.join(['python', *sys.argv])}` — {args.executions} Executions of a "
        f"{args.steps}-step linear Template, each Job scripted to run {args.step_seconds:g} s, "
        + (f"created at {args.rate:g} per second" if args.rate else "created at once")
        + "\n\n"
        "| latency | count | p50 | p90 | p99 | max | budget p50 ≤ 50 ms, p99 ≤ 250 ms |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |\n"
        f"{row('Execution created → first Job created', first_job, True)}\n"
        f"{row('Job completed → next Job created', next_job, True)}\n"
        f"{row('last Job completed → Execution finished', to_finish, False)}\n\n"
        "| run | |\n| --- | ---: |\n"
        + "".join(f"| {k} | {v} |\n" for k, v in facts.items())
        + "\n| operator API requests by verb and resource | count |\n| --- | ---: |\n"
        + "".join(f"| {what} | {n:,} |\n" for what, n in by_kind(ours))
    )
    if error:
        report += f"\nIncomplete: {error}.\n"
    print(report)
    if args.write:
        with open(args.write, "a") as out:
            out.write(report)
    return 1 if error or succeeded < args.executions else 0


if __name__ == "__main__":
    sys.exit(main())
