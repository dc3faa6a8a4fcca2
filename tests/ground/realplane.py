"""The real test ground: etcd, kube-apiserver and kube-controller-manager on loopback.

The binaries are the ones `make controlplane` builds from pinned Go modules into
`.cache/controlplane/<kubernetes version>/bin/` (tools/controlplane/build.sh); the environment
variable `KOOS_CONTROLPLANE_BIN` names another folder holding them. `RealPlane.start()` makes a
temporary folder with a throw-away CA and serving certificate, an RSA key that signs service
account tokens, a static token file and kubeconfigs, then starts

- etcd on two free loopback ports (client, peer), without fsync (a test ground loses nothing),
- kube-apiserver on a free loopback port with `--authorization-mode=Node,RBAC`, the static token
  file, service-account token signing, the default admission plugins (webhooks among them) and
  aggregated discovery as every kube-apiserver serves it, and an audit log of the requests of
  `AUDITED_GROUPS` (the koos-system ServiceAccounts: the operator as installed),
- kube-controller-manager with `CONTROLLERS`, each controller as its own service account,

and returns once `/readyz` answers ok, the controller manager's `/healthz` answers ok and the
`default` ServiceAccount exists (the serviceaccount controller runs: Pods can be created). Every
wait polls a condition until a deadline; a process that exits early fails the start with the end
of its log. `stop()` ends the three process groups (TERM, then KILL past a grace period) and
removes the folder; an `atexit` hook calls it if the caller did not.

The users mirror the sandbox's: `admin` (system:masters), `alice` (group sre) and `bob` (group
dev), each with a random bearer token; `kubeconfig_path(user)` is a kubeconfig for one user and
`write_kubeconfig(path)` one with the admin as current context and a context per user, as the
sandbox's `write_kubeconfig` writes it. Plain Python (stdlib and `cryptography`): no pytest here.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from koos_sandbox.kubeconfig import build_kubeconfig as sandbox_kubeconfig

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
BIN_ENV = "KOOS_CONTROLPLANE_BIN"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
ADMIN_GROUP = "system:masters"
# As the sandbox's DEFAULT_USERS (koos.sandbox.app): a user name and its groups.
DEFAULT_USERS: dict[str, tuple[str, ...]] = {"alice": ("sre",), "bob": ("dev",)}
CLUSTER = "koos-realplane"
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_ISSUER = "https://kubernetes.default.svc.cluster.local"
# The controllers koos and the tests rely on: Jobs and their Pods, garbage collection of owned
# objects, namespace deletion, service accounts and their tokens, TTL of finished Jobs, the
# kube-root-ca.crt ConfigMap projected service-account volumes read, and Deployments (a step's
# `kubectl rollout restart`), and the aggregation of ClusterRoles by label (koos-view into
# view, as the chart's roles rely on). Anything else a real cluster runs is off.
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "ttl-after-finished-controller",
    "root-ca-certificate-publisher-controller",
    "deployment-controller",
    "replicaset-controller",
    "clusterrole-aggregation-controller",
)


# Whose requests kube-apiserver records in its audit log (`RealPlane.audit_events()`): the
# ServiceAccounts of koos-system, where the operator runs as installed (manifests/rbac/
# operator.yaml), so a test can derive the rights it used from real traffic.
AUDITED_GROUPS = ("system:serviceaccounts:koos-system",)


class GroundError(RuntimeError):
    """The ground could not start: what failed and the end of the process's log."""


def kubernetes_version(root: Path = ROOT) -> str:
    """The k8s.io/kubernetes version tools/controlplane/go.mod pins, e.g. "v1.36.3"."""
    text = (root / "tools" / "controlplane" / "go.mod").read_text()
    match = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise GroundError("tools/controlplane/go.mod does not require k8s.io/kubernetes")
    return match.group(1)


def bin_dir(root: Path = ROOT) -> Path:
    """Where the binaries are: $KOOS_CONTROLPLANE_BIN, else the `make controlplane` cache."""
    override = os.environ.get(BIN_ENV)
    if override:
        return Path(override)
    return root / ".cache" / "controlplane" / kubernetes_version(root) / "bin"


def missing(names: Sequence[str] = BINARIES, root: Path = ROOT) -> str | None:
    """Why the ground cannot start (a sentence naming what to run), or None when it can."""
    folder = bin_dir(root)
    absent = [name for name in names if not os.access(folder / name, os.X_OK)]
    if not absent:
        return None
    if os.environ.get(BIN_ENV):
        how = f"${BIN_ENV} names that folder; unset it to use the `make controlplane` cache"
    elif shutil.which("go") is None:
        how = "Go is not installed, so they cannot be built (install Go 1.26, then run"
        how += " `make controlplane`)"
    else:
        how = "run `make controlplane` to build them (a cold build takes minutes)"
    return f"{', '.join(absent)} not built in {folder}: {how}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- certificates and keys ------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    ca_key_pem: bytes
    serving_cert_pem: bytes
    serving_key_pem: bytes
    sa_key_pem: bytes  # RSA private key: signs service-account tokens
    sa_pub_pem: bytes


def make_pki(hosts: Sequence[str]) -> Pki:
    """A CA valid for a day, a serving certificate for `hosts` (P-256: fast) and an RSA key
    for service-account tokens."""
    now = datetime.datetime.now(datetime.UTC)
    before, after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    usage = {
        "content_commitment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "encipher_only": False,
        "decipher_only": False,
    }
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("koos-realplane-ca"))
        .issuer_name(_name("koos-realplane-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                key_encipherment=False,
                **usage,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=False,
                crl_sign=False,
                key_encipherment=True,
                **usage,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Pki(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        ca_key_pem=_pem_key(ca_key),
        serving_cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        serving_key_pem=_pem_key(key),
        sa_key_pem=_pem_key(sa_key),
        sa_pub_pem=sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


# ---- kubeconfigs ----------------------------------------------------------------------------


def build_kubeconfig(
    url: str, ca_pem: bytes, tokens: Mapping[str, str], current: str, namespace: str = "default"
) -> dict[str, Any]:
    """The sandbox's kubeconfig layout for this ground: a user and a context per entry of
    `tokens` (the admin's context named CLUSTER, the others by user name), `current` selected."""
    return sandbox_kubeconfig(url, ca_pem, tokens, current, namespace, cluster=CLUSTER)


# ---- processes ------------------------------------------------------------------------------


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_running(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise GroundError(f"{self.name} exited with {code}; its log ends:\n{self.tail()}")


def _rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) if match else 0


@dataclass
class RealPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback; see the module docstring."""

    bin: Path = field(default_factory=bin_dir)
    users: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_USERS))
    controllers: Sequence[str] = CONTROLLERS
    extra_apiserver_args: Sequence[str] = ()
    audited_groups: Sequence[str] = AUDITED_GROUPS  # empty: no audit log
    start_timeout: float = 120.0
    keep_dir: bool = False  # keep the temporary folder (logs) after stop()

    url: str = field(init=False, default="")
    admin_token: str = field(init=False, default="")
    user_tokens: dict[str, str] = field(init=False, default_factory=dict)
    ca_pem: bytes = field(init=False, default=b"")
    dir: Path = field(init=False, default=Path())
    timings: dict[str, float] = field(init=False, default_factory=dict)
    _processes: list[_Process] = field(init=False, default_factory=list)
    _stopped: bool = field(init=False, default=False)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> RealPlane:
        absent = [name for name in BINARIES if not os.access(self.bin / name, os.X_OK)]
        if absent:
            default = self.bin == bin_dir()
            raise GroundError(
                missing() if default else f"{', '.join(absent)} not found in {self.bin}"
            )
        atexit.register(self.stop)
        self.dir = Path(tempfile.mkdtemp(prefix="koos-realplane-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        began = time.monotonic()
        pki = make_pki(
            (
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                str(next(ipaddress.ip_network(SERVICE_CIDR).hosts())),
            )
        )
        self.ca_pem = pki.ca_pem
        files = {
            "ca.crt": pki.ca_pem,
            "ca.key": pki.ca_key_pem,
            "apiserver.crt": pki.serving_cert_pem + pki.ca_pem,
            "apiserver.key": pki.serving_key_pem,
            "sa.key": pki.sa_key_pem,
            "sa.pub": pki.sa_pub_pem,
        }
        for name, content in files.items():
            (self.dir / name).write_bytes(content)
            (self.dir / name).chmod(0o600)
        self.timings["pki"] = time.monotonic() - began

        # Tokens: token,user,uid,"group1,group2" (kube-apiserver's --token-auth-file).
        self.admin_token = secrets.token_urlsafe(24)
        kcm_token = secrets.token_urlsafe(24)
        rows = [
            (self.admin_token, "admin", (ADMIN_GROUP,)),
            (kcm_token, "system:kube-controller-manager", ()),
        ]
        self.user_tokens = {name: secrets.token_urlsafe(24) for name in self.users}
        rows += [(self.user_tokens[name], name, tuple(self.users[name])) for name in self.users]
        lines = [
            f'{token},{user},{secrets.token_hex(8)},"{",".join(groups)}"'
            for token, user, groups in rows
        ]
        tokens_file = self.dir / "tokens.csv"
        tokens_file.write_text("\n".join(lines) + "\n")
        tokens_file.chmod(0o600)

        etcd_client, etcd_peer = free_port(), free_port()
        etcd = self._spawn(
            "etcd",
            [
                "--name=ground",
                f"--data-dir={self.dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=ground=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait(
            "etcd /health",
            lambda: _http_ok(f"http://127.0.0.1:{etcd_client}/health", None, None),
            etcd,
        )
        self.timings["etcd"] = time.monotonic() - began

        audit: list[str] = []
        if self.audited_groups:
            policy = {
                "apiVersion": "audit.k8s.io/v1",
                "kind": "Policy",
                "omitStages": ["RequestReceived"],
                "rules": [
                    {"level": "Metadata", "userGroups": list(self.audited_groups)},
                    {"level": "None"},
                ],
            }
            (self.dir / "audit-policy.yaml").write_text(yaml.safe_dump(policy))
            audit = [
                f"--audit-policy-file={self.dir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.dir / 'audit.log'}",
                "--audit-log-mode=blocking",  # written before the response
            ]

        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={self.dir / 'apiserver.crt'}",
                f"--tls-private-key-file={self.dir / 'apiserver.key'}",
                f"--client-ca-file={self.dir / 'ca.crt'}",
                f"--token-auth-file={tokens_file}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-key-file={self.dir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.dir / 'sa.key'}",
                f"--service-account-issuer={SERVICE_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--profiling=false",
                *audit,
                *self.extra_apiserver_args,
            ],
        )
        self._wait("kube-apiserver /readyz", lambda: self._api_ok("/readyz"), apiserver)
        self.timings["kube-apiserver"] = time.monotonic() - began

        kcm_kubeconfig = self.dir / "kube-controller-manager.kubeconfig"
        kcm_kubeconfig.write_text(
            yaml.safe_dump(
                build_kubeconfig(
                    self.url, self.ca_pem, {"system:kube-controller-manager": kcm_token}, "x"
                )
                | {"current-context": "system:kube-controller-manager"}
            )
        )
        kcm_kubeconfig.chmod(0o600)
        kcm_port = free_port()
        kcm = self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm_kubeconfig}",
                f"--authentication-kubeconfig={kcm_kubeconfig}",
                f"--authorization-kubeconfig={kcm_kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={self.dir / 'kcm-certs'}",
                "--leader-elect=false",
                f"--controllers={','.join(self.controllers)}",
                "--use-service-account-credentials=true",
                f"--root-ca-file={self.dir / 'ca.crt'}",
                f"--service-account-private-key-file={self.dir / 'sa.key'}",
                "--profiling=false",
            ],
        )
        self._wait(
            "kube-controller-manager /healthz",
            lambda: _http_ok(f"https://127.0.0.1:{kcm_port}/healthz", None, None, verify=False),
            kcm,
        )
        # The serviceaccount controller has run: a Pod in `default` passes admission.
        self._wait(
            "the default ServiceAccount",
            lambda: self._api_ok("/api/v1/namespaces/default/serviceaccounts/default"),
            kcm,
        )
        self.timings["ready"] = time.monotonic() - began

    def stop(self) -> None:
        """End every process group this ground started and remove its folder. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for process in reversed(self._processes):
            _end(process.popen)
        if self.dir != Path() and not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> RealPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what tests use -----------------------------------------------------------------

    def kubeconfig(self, user: str = "admin", namespace: str = "default") -> dict[str, Any]:
        tokens = {"admin": self.admin_token, **self.user_tokens}
        if user not in tokens:
            raise KeyError(f"no user {user!r}; the ground has {sorted(tokens)}")
        return build_kubeconfig(self.url, self.ca_pem, tokens, user, namespace)

    def write_kubeconfig(
        self, path: str | Path, user: str = "admin", namespace: str = "default"
    ) -> Path:
        """Every user's credentials and context, `user` current (as the sandbox's file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(user, namespace), sort_keys=False))
        path.chmod(0o600)
        return path

    def kubeconfig_path(self, user: str = "admin") -> Path:
        """A kubeconfig in the ground's folder holding `user`'s credentials only."""
        path = self.dir / "kubeconfigs" / f"{user}.yaml"
        if not path.exists():
            token = self.admin_token if user == "admin" else self.user_tokens[user]
            config = build_kubeconfig(self.url, self.ca_pem, {user: token}, user)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            path.chmod(0o600)
        return path

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca_pem.decode())

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        user: str = "admin",
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One API call as `user`; returns (status, decoded JSON body or text). A PATCH
        names its kind in `content_type` (e.g. application/merge-patch+json)."""
        token = self.admin_token if user == "admin" else self.user_tokens[user]
        return api_call(self.url, token, self.ca_pem, method, path, body, content_type, 10)

    def rss_kib(self) -> dict[str, int]:
        """Resident memory of each process now, in KiB."""
        return {p.name: _rss_kib(p.popen.pid) for p in self._processes}

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self._processes]

    def audit_events(self) -> list[dict[str, Any]]:
        """The audit log's events so far (requests by `audited_groups`, stage
        ResponseComplete or ResponseStarted, metadata only), oldest first."""
        try:
            text = (self.dir / "audit.log").read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    # ---- internals ----------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> _Process:
        log = self.dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(self.bin / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # its own process group: stop() ends it whole
            )
        process = _Process(name, popen, log)
        self._processes.append(process)
        return process

    def _api_ok(self, path: str) -> bool:
        return _http_ok(self.url + path, self.admin_token, self.ca_pem)

    def _wait(self, what: str, ready: Callable[[], bool], process: _Process) -> None:
        deadline = time.monotonic() + self.start_timeout
        delay = 0.02
        while True:
            for running in self._processes:
                running.check_running()
            if ready():
                return
            if time.monotonic() > deadline:
                raise GroundError(
                    f"{what} not ready after {self.start_timeout:.0f} s; "
                    f"{process.name}'s log ends:\n{process.tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)


def api_call(
    url: str,
    token: str,
    ca_pem: bytes,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    timeout: float = 10,
) -> tuple[int, Any]:
    """One API call with a bearer token to a server `ca_pem` signs; `body` is sent as JSON
    unless it is bytes. Returns (status, decoded JSON body or text)."""
    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", content_type)
    context = ssl.create_default_context(cadata=ca_pem.decode())
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `probe` until it returns something other than None/False; fail at the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _http_ok(url: str, token: str | None, ca_pem: bytes | None, verify: bool = True) -> bool:
    if ca_pem is not None:
        context: ssl.SSLContext | None = ssl.create_default_context(cadata=ca_pem.decode())
    elif url.startswith("https:") and not verify:
        context = ssl._create_unverified_context()  # the controller manager's self-signed cert
    else:
        context = None
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=2) as reply:
            return bool(reply.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _end(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """TERM the process group, wait up to `grace` seconds, then KILL it."""
    if popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=grace)
    # Whatever is left in the group (the leader may have gone first).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()
