"""Which test grounds a session runs on, and what it says when the real one cannot run.

KOOS_GROUND chooses: `sandbox` (the default), `real` or `both`. The real ground needs the
binaries `make controlplane` builds; without them its tests skip, and the session says so in its
header and again in its summary, so nobody reads a green run as "passed on both". With
KOOS_REQUIRE_REAL_GROUND=1 (what `.ci/run` sets) a session that cannot run the real ground
stops before the first test instead.
"""

from __future__ import annotations

import os

import pytest

from .realplane import bin_dir, missing

GROUND_ENV = "KOOS_GROUND"
REQUIRE_ENV = "KOOS_REQUIRE_REAL_GROUND"
GROUNDS = ("sandbox", "real")
CHOICES = {"sandbox": ("sandbox",), "real": ("real",), "both": GROUNDS}


def grounds() -> tuple[str, ...]:
    """The grounds KOOS_GROUND names, in the order tests run on them."""
    value = os.environ.get(GROUND_ENV, "").strip() or "sandbox"
    if value not in CHOICES:
        raise pytest.UsageError(
            f"{GROUND_ENV}={value!r}: choose one of {', '.join(CHOICES)} (default sandbox)"
        )
    return CHOICES[value]


def real_ground_unavailable() -> str | None:
    """Why the session's real ground cannot run, or None (also None when it is not asked for)."""
    if "real" not in grounds():
        return None
    return missing()


def pytest_sessionstart(session: pytest.Session) -> None:
    required = os.environ.get(REQUIRE_ENV) == "1"
    if required and "real" not in grounds():
        raise pytest.UsageError(f"{REQUIRE_ENV}=1 needs {GROUND_ENV}=real or both")
    reason = real_ground_unavailable()
    if required and reason:
        pytest.exit(f"the real ground is required ({REQUIRE_ENV}=1) but cannot run: {reason}", 3)


def pytest_report_header() -> list[str]:
    reason = real_ground_unavailable()
    names = ", ".join(grounds())
    if reason:
        return [f"test grounds: {names} — THE REAL GROUND IS SKIPPED: {reason}"]
    if "real" in grounds():
        return [f"test grounds: {names} (real ground binaries in {bin_dir()})"]
    return [f"test grounds: {names}"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = real_ground_unavailable()
    if reason:
        terminalreporter.write_sep("!", "the real ground was skipped", yellow=True, bold=True)
        terminalreporter.write_line(reason)
