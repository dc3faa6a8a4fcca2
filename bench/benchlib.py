"""What the benchmarks share: the operator as a process, a client of the sandbox from its
kubeconfig, percentiles."""

from __future__ import annotations

import base64
import math
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import yaml

from koos.cli.demo import operator_command


def client(kubeconfig: Path) -> tuple[str, str, ssl.SSLContext]:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    token = config["users"][0]["user"]["token"]
    return cluster["server"], token, ssl.create_default_context(cadata=ca)


PY_SPY = [str(Path(sys.executable).with_name("py-spy")), "record", "-r", "200", "-f", "raw"]


def attach_profiler(pid: int, target: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy recording `pid` into `target` (collapsed stacks) until sent SIGINT; None
    without a target."""
    if not target:
        return None
    return subprocess.Popen([*PY_SPY, "-o", target, "--pid", str(pid)])


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency_row(
    what: str,
    values: list[float],
    show: Callable[[float], str],
    budget: tuple[float, float] | None,
) -> str:
    """A Markdown row: count, p50, p90, p99, max (each through `show`), and whether the
    (p50, p99) `budget` is met."""
    if not values:
        return f"| {what} | 0 | | | | | {'not measured' if budget else ''} |"
    p50, p99 = percentile(values, 50), percentile(values, 99)
    verdict = ""
    if budget is not None:
        verdict = "met" if p50 <= budget[0] and p99 <= budget[1] else "**not met**"
    return (
        f"| {what} | {len(values)} | {show(p50)} | {show(percentile(values, 90))} "
        f"| {show(p99)} | {show(max(values))} | {verdict} |"
    )


def start_operator(kubeconfig: Path, log: IO[str]) -> subprocess.Popen[bytes]:
    """`koos operator` in a process of its own, as deployed: it must not share a CPU-bound
    event loop with the sandbox."""
    profile = os.environ.get("KOOS_BENCH_PROFILE")  # py-spy's collapsed stacks go to this file
    return subprocess.Popen(
        [*([*PY_SPY, "-o", profile, "--"] if profile else []), *operator_command(kubeconfig)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a group of its own: stopped with py-spy, if any
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop_operator(operator: subprocess.Popen[bytes]) -> None:
    """SIGTERM (SIGINT under py-spy, which then writes its profile), then SIGKILL after 10 s."""
    if operator.poll() is not None:
        return
    group = os.getpgid(operator.pid)
    os.killpg(group, signal.SIGINT if os.environ.get("KOOS_BENCH_PROFILE") else signal.SIGTERM)
    try:
        operator.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(group, signal.SIGKILL)
        operator.wait()
