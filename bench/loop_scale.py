"""A loop of ten thousand items on the sandbox: time, requests, status size, live Jobs.

The issue's budget: a 10,000-item loop at concurrency 200 with instant scripted Jobs
completes; the Execution never exceeds 256 KiB; live Jobs never exceed concurrency + 10;
writes per item at most 3, and Execution status writes batched (not one per item).

The sandbox runs in this process on a loop of its own in a background thread, the operator
as `koos operator` in a process of its own. A store listener sees every committed write (no
polling): the Execution's size at each write, the Jobs and Pods alive at once. Requests come
from the sandbox's request log, by the operator's user. Usage:

    .venv/bin/python bench/loop_scale.py [--items N] [--concurrency C] [--deadline SECONDS]
        [--operator-log FILE] [--write FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import client, start_operator, stop_operator
from operator_latency import peak_rss

from koos_sandbox.app import SandboxThread
from koos_sandbox.store import Event

ROOT = Path(__file__).resolve().parents[1]
NS = "default"
API = f"/apis/koos.io/v1alpha1/namespaces/{NS}"
NAME = "loop-scale"
STATUS_BOUND = 256 * 1024


@dataclass
class Recorder:
    """A store listener: runs on the sandbox's loop for every committed event."""

    largest: int = 0
    jobs: set[str] = field(default_factory=set)
    pods: set[str] = field(default_factory=set)
    most_jobs: int = 0
    most_pods: int = 0
    jobs_created: int = 0
    started: float | None = None
    finished: float | None = None
    phase: str = ""
    message: str = ""
    loop: dict[str, Any] = field(default_factory=dict)
    template_ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def __call__(self, event: Event) -> None:
        meta = event.obj.get("metadata") or {}
        status = event.obj.get("status") or {}
        if event.key[1] == "templates" and meta.get("name") == NAME:
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            if ready:
                self.template_ready.set()
            return
        if event.key[1] == "executions" and meta.get("name") == NAME:
            if self.started is None:
                self.started = time.monotonic()
            self.largest = max(self.largest, len(json.dumps(event.obj).encode()))
            if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
                self.finished = self.finished or time.monotonic()
                self.phase, self.message = status["phase"], status.get("message", "")
                self.loop = (status.get("steps") or [{}])[0].get("loop") or {}
                self.done.set()
            return
        if event.key not in (("batch", "jobs"), ("", "pods")):
            return
        if (meta.get("labels") or {}).get("koos.io/execution") != NAME:
            return
        live = self.jobs if event.key == ("batch", "jobs") else self.pods
        if event.type == "DELETED" or "deletionTimestamp" in meta:
            live.discard(meta["name"])
        else:
            if event.type == "ADDED" and event.key == ("batch", "jobs"):
                self.jobs_created += 1
            live.add(meta["name"])
        self.most_jobs = max(self.most_jobs, len(self.jobs))
        self.most_pods = max(self.most_pods, len(self.pods))


def template(items: int, concurrency: int) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1alpha1",
        "kind": "Template",
        "metadata": {"name": NAME},
        "spec": {
            "steps": [
                {
                    "name": "each",
                    "loop": {
                        "items": list(range(items)),
                        "concurrency": concurrency,
                        "collectOutputs": False,
                    },
                    "run": {"image": "busybox", "script": 'echo "$KOOS_ITEM"'},
                }
            ]
        },
    }


async def start_run(kubeconfig: Path, recorder: Recorder, args: argparse.Namespace) -> None:
    url, token, context = client(kubeconfig)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=4)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as http:
        body = template(args.items, args.concurrency)
        async with http.post(f"{API}/templates", json=body) as r:
            assert r.status == 201, await r.text()
        if not await asyncio.to_thread(recorder.template_ready.wait, 60):
            raise TimeoutError("the operator did not validate the Template within 60 s")
        run = {
            "apiVersion": "koos.io/v1alpha1",
            "kind": "Execution",
            "metadata": {"name": NAME},
            "spec": {"templateRef": {"name": NAME}},
        }
        async with http.post(f"{API}/executions", json=run) as r:
            assert r.status == 201, await r.text()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds for the run")
    parser.add_argument("--operator-log", help="keep the operator's output in this file")
    parser.add_argument("--write", help="append the results as Markdown to this file")
    args = parser.parse_args()

    recorder = Recorder()
    runner = SandboxThread(crds=ROOT / "crds", jobs_mode="scripted")
    sandbox = runner.start()
    runner.run(sandbox.store.listeners.append, recorder)
    error = ""
    peak: int | None = None
    with tempfile.TemporaryDirectory(prefix="koos-bench-") as tmp:
        kubeconfig = sandbox.write_kubeconfig(Path(tmp) / "kubeconfig")
        log_path = Path(args.operator_log or Path(tmp) / "operator.log")
        mark = runner.run(sandbox.requests.mark)
        with open(log_path, "w") as log:
            operator = start_operator(kubeconfig, log)
        try:
            asyncio.run(start_run(kubeconfig, recorder, args))
            if not recorder.done.wait(args.deadline):
                error = f"deadline of {args.deadline:g} s passed"
            if operator.poll() is not None:
                error = f"the operator exited with {operator.returncode}"
        except Exception as failure:  # report what there is
            error = f"{type(failure).__name__}: {failure}"
        finally:
            peak = peak_rss(operator.pid)
            stop_operator(operator)
            records = runner.run(sandbox.requests.since, mark)
            runner.stop()
        if error:
            tail = log_path.read_text().splitlines()[-20:]
            print("\n".join(["operator log (last lines):", *tail]), file=sys.stderr)

    # The operator's requests: all but this script's two creates and the sandbox's own.
    ours = [
        r
        for r in records
        if not (r.verb == "create" and r.resource in ("templates", "executions"))
        and not r.user.startswith("system:serviceaccount:kube-system")
    ]
    writes = [
        r
        for r in ours
        if r.verb in ("create", "update", "patch", "delete")
        and r.resource in ("jobs", "executions")
    ]
    status_writes = [r for r in writes if r.resource == "executions" and r.subresource == "status"]
    by_kind: dict[str, int] = {}
    for r in ours:
        key = f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}"
        by_kind[key] = by_kind.get(key, 0) + 1
    wall = (
        f"{recorder.finished - recorder.started:.1f} s"
        if recorder.finished and recorder.started
        else "n/a"
    )
    items = max(args.items, 1)
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.items} items, "
        f"concurrency {args.concurrency}",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        "sandbox in-process (scripted instant Jobs), operator in its own process.",
        "",
        "| measure | value | budget |",
        "| --- | --- | --- |",
        f"| outcome | {recorder.phase or 'unfinished'} ({error or recorder.message}) | completes |",
        f"| succeeded / failed | {recorder.loop.get('succeeded')} / {recorder.loop.get('failed')}"
        " | |",
        f"| wall time (Execution created → finished) | {wall} | |",
        f"| Jobs created | {recorder.jobs_created} | one per item |",
        f"| writes by the operator (Jobs, Execution) | {len(writes)} "
        f"({len(writes) / items:.2f} per item) | ≤ 3 per item |",
        f"| Execution status writes | {len(status_writes)} "
        f"({len(status_writes) / items:.3f} per item) | batched |",
        f"| all requests by the operator | {len(ours)} ({len(ours) / items:.2f} per item) | |",
        f"| largest Execution | {recorder.largest / 1024:.1f} KiB | ≤ 256 KiB |",
        f"| most Jobs alive at once | {recorder.most_jobs} | ≤ {args.concurrency + 10} |",
        f"| most Pods alive at once | {recorder.most_pods} | ≤ {args.concurrency + 10} |",
        f"| operator peak RSS (VmHWM) | "
        f"{f'{peak / 2**20:.0f} MiB' if peak is not None else 'n/a'} | |",
        "",
        "Requests by the operator, by kind:",
        "",
        *(f"- {k}: {n}" for k, n in sorted(by_kind.items(), key=lambda i: -i[1])),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(args.write, "a") as out:
            out.write(text + "\n")
    met = (
        recorder.phase == "Succeeded"
        and recorder.largest <= STATUS_BOUND
        and recorder.most_jobs <= args.concurrency + 10
        and len(writes) <= 3 * items
    )
    return 0 if met and not error else 1


if __name__ == "__main__":
    sys.exit(main())
