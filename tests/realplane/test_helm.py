"""The Helm chart passes `helm lint`, renders with `helm template`, and the API server accepts
what it renders (a server-side dry run on the real ground: schemas, RBAC objects, webhooks).

helm is the one `make controlplane` builds (tools/helm); without it, or without a chart under
helm/, the tests skip saying which.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ..ground.realplane import RealPlane, bin_dir
from .conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
CHARTS = sorted(path.parent for path in (ROOT / "helm").glob("*/Chart.yaml"))


class Helm:
    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = str(binary)
        self.env = {
            **os.environ,
            **{
                f"HELM_{kind}_HOME": str(home / kind.lower())
                for kind in ("CACHE", "CONFIG", "DATA")
            },
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=120, env=self.env
        )


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    binary = bin_dir() / "helm"
    if not os.access(binary, os.X_OK):
        pytest.skip(f"helm not built in {binary.parent}: run `make controlplane`")
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


def chart_or_skip() -> list[Path]:
    if not CHARTS:
        pytest.skip("no chart under helm/ yet (helm/README.md: it comes with the deployment work)")
    return CHARTS


def test_chart_lints(helm: Helm) -> None:
    for chart in chart_or_skip():
        result = helm("lint", "--strict", str(chart))
        assert result.returncode == 0, f"helm lint {chart}:\n{result.stdout}{result.stderr}"


def test_chart_renders_and_the_api_server_accepts_it(
    helm: Helm, realplane: RealPlane, kubectl: Kubectl, namespace: str
) -> None:
    for chart in chart_or_skip():
        result = helm("template", "koos", str(chart), "--namespace", namespace)
        assert result.returncode == 0, f"helm template {chart}:\n{result.stderr}"
        assert "kind:" in result.stdout
        kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=result.stdout)
