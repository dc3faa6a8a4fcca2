"""How long the real test ground takes to start, and how much memory its processes hold.

Starts tests/ground/realplane.py's RealPlane (etcd, kube-apiserver, kube-controller-manager built
by `make controlplane`) `--runs` times, one after the other. For each run: the time to etcd
healthy, to kube-apiserver /readyz, and to ready (controller manager healthy and the `default`
ServiceAccount created), then each process's RSS at ready and again after `--settle` seconds
with the koos CRDs applied (what the tests see). Then stop() and a check that no process of the
ground is left. Usage:

    .venv/bin/python bench/realplane_start.py [--runs N] [--settle SECONDS] [--write FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "ground"))

from realplane import RealPlane, missing  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--write", type=Path, help="append a dated section to this file")
    args = parser.parse_args()
    reason = missing()
    if reason:
        print(f"realplane_start: {reason}", file=sys.stderr)
        return 1

    rows: list[dict[str, float]] = []
    rss_ready: list[dict[str, int]] = []
    rss_settled: list[dict[str, int]] = []
    for run in range(args.runs):
        ground = RealPlane()
        began = time.monotonic()
        ground.start()
        rows.append(dict(ground.timings, total=time.monotonic() - began))
        rss_ready.append(ground.rss_kib())
        subprocess.run(
            ["kubectl", f"--kubeconfig={ground.write_kubeconfig(ground.dir / 'k')}", "apply",
             "-f", str(ROOT / "crds")],
            check=True, capture_output=True,
        )  # fmt: skip
        time.sleep(args.settle)  # a measured interval, not a wait for a condition
        rss_settled.append(ground.rss_kib())
        pids = ground.pids()
        ground.stop()
        left = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
        if left:
            print(f"run {run}: processes left after stop(): {left}", file=sys.stderr)
            return 1
        print(f"run {run}: {rows[-1]}  rss {rss_settled[-1]}", file=sys.stderr)

    def median(key: str) -> float:
        return statistics.median(row[key] for row in rows)

    def mib(samples: list[dict[str, int]], name: str) -> str:
        return f"{statistics.median(s[name] for s in samples) / 1024:.0f} MiB"

    names = list(rss_settled[0])
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d} ({args.runs} runs, median; {os.cpu_count()} cores, "
        f"Python {platform.python_version()})",
        "",
        "| step (since start()) | seconds |",
        "| --- | ---: |",
        f"| PKI made (CA, serving cert, RSA 2048 SA key) | {median('pki'):.2f} |",
        f"| etcd healthy | {median('etcd'):.2f} |",
        f"| kube-apiserver /readyz ok | {median('kube-apiserver'):.2f} |",
        f"| ready (controller manager healthy, default ServiceAccount) | {median('ready'):.2f} |",
        "",
        f"| process | RSS at ready | RSS after CRDs applied + {args.settle:.0f} s |",
        "| --- | ---: | ---: |",
        *(f"| {n} | {mib(rss_ready, n)} | {mib(rss_settled, n)} |" for n in names),
        "",
        "stop() left no process in any run.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        if not args.write.exists():
            args.write.write_text(
                "# Real test ground: start time and memory\n\n"
                "`bench/realplane_start.py`: RealPlane (tests/ground/realplane.py) started and "
                "stopped in turn on the 2-core workplace machine.\n\n"
            )
        with args.write.open("a") as out:
            out.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
