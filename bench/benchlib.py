"""What the benchmarks share: connecting to a sandbox from its kubeconfig, percentiles."""

from __future__ import annotations

import base64
import math
import ssl
from pathlib import Path

import yaml


def client(kubeconfig: Path) -> tuple[str, str, ssl.SSLContext]:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    token = config["users"][0]["user"]["token"]
    return cluster["server"], token, ssl.create_default_context(cadata=ca)


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
