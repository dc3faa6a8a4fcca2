"""`koos-sandbox` as a person runs it: ready line, a working kubeconfig, a clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.sandbox_only(reason="the sandbox's own command line")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_koos_sandbox_serves_until_signalled(tmp_path: Path, stop: signal.Signals) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "koos_sandbox",
            "--kubeconfig",
            str(kubeconfig),
            "--user",
            "carol:sre,oncall",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "ready" in line
        assert "https://127.0.0.1:" in line
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "koos-sandbox"
        assert {c["name"] for c in config["contexts"]} == {"koos-sandbox", "alice", "bob", "carol"}
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
