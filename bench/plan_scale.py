"""Planning cost against the number of steps (issue 10, item 10): a chain of N run steps,
each reading the previous step's output, planned pass after pass as its Jobs succeed.

Reports, for N = 10, 100, 1,000: the median time of one planning pass in the middle of the
run, the time per step, and the total planning time of the whole run (N + 1 passes). A
linear planner keeps the time per step flat; the whole run then grows with N² only through
the status itself (every pass carries every step's record).

    PYTHONPATH=operator .venv/bin/python bench/plan_scale.py [--sizes 10 100 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, TemplateFacts

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)


def chain(n: int) -> TemplateSpec:
    steps = []
    for i in range(n):
        env = [{"name": "PREVIOUS", "value": f"{{{{ steps.s{i - 1}.outputs.v }}}}"}] if i else []
        steps.append({"name": f"s{i}", "run": {"image": "busybox", "script": "true", "env": env}})
    return TemplateSpec.model_validate({"steps": steps})


def snapshot(
    spec: TemplateSpec, status: ExecutionStatus, jobs: dict[str, JobFacts]
) -> ExecutionSnapshot:
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}}),
        status=status,
        template=TemplateFacts("tpl", "tpl-uid", 1, spec),
        jobs=jobs,
    )


def run(n: int) -> tuple[list[float], float]:
    """Plan a whole run of an n-step chain; the time of each pass, and the total."""
    spec = chain(n)
    status = ExecutionStatus()
    jobs: dict[str, JobFacts] = {}
    times: list[float] = []
    now = T0
    for _ in range(n + 2):
        started = time.perf_counter()
        result = plan(snapshot(spec, status, jobs), now)
        times.append(time.perf_counter() - started)
        status = result.status
        if status.phase in ("Succeeded", "Failed"):
            break
        now += timedelta(seconds=1)
        jobs = {
            m["metadata"]["name"]: JobFacts(
                name=m["metadata"]["name"], phase="Succeeded", created=now, message='{"v": "x"}'
            )
            for m in result.create_jobs
        }
    assert status.phase == "Succeeded", status.message
    return times, sum(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--out", type=Path, default=None, help="append a Markdown section")
    parser.add_argument("--label", default="", help="what was measured (e.g. the commit)")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        times, total = run(n)
        middle = times[len(times) // 3 : 2 * len(times) // 3] or times
        median = statistics.median(middle)
        rows.append((n, median, median / n, total))
        print(
            f"n={n}: pass {median * 1000:.2f} ms, {median / n * 1e6:.1f} µs/step, "
            f"run {total:.2f} s",
            flush=True,
        )
    lines = [
        f"\n## {datetime.now(UTC):%Y-%m-%d} {args.label}".rstrip(),
        "",
        "| steps | one pass (median, mid-run) | per step | whole run (N + 1 passes) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {n:,} | {m * 1000:.2f} ms | {per * 1e6:.1f} µs | {total:.2f} s |"
        for n, m, per, total in rows
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        with args.out.open("a") as handle:
            handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
