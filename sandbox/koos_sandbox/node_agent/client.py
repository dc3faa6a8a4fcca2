"""The node agent's way to the API server: a kubeconfig (or URL, token and CA) and a small
JSON client over aiohttp with list, watch and the write verbs a kubelet uses.

Credentials: a bearer token, or a client certificate and key (`client-certificate[-data]`,
`client-key[-data]`), as kubeconfigs for kubelets and admins carry them. The server is
verified against the kubeconfig's CA unless it says `insecure-skip-tls-verify`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

Obj = dict[str, Any]


class ApiFailure(Exception):
    """The API server refused a request: its HTTP code, reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message


class WatchGone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


@dataclass(frozen=True)
class Credentials:
    server: str
    ca_pem: bytes | None = None
    token: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    insecure: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.server)
        return parts.hostname or "127.0.0.1", parts.port or 443

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.insecure:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if self.cert_pem and self.key_pem:
            with tempfile.TemporaryDirectory(prefix="koos-agent-") as tmp:
                cert, key = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
                cert.write_bytes(self.cert_pem)
                key.touch(0o600)
                key.write_bytes(self.key_pem)
                context.load_cert_chain(cert, key)
        return context


def _data(entry: Obj, key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(os.path.expanduser(str(entry[key])))
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def load_kubeconfig(path: str | Path, context: str | None = None) -> Credentials:
    """The server and credentials of `context` (default: the current one) of a kubeconfig."""
    path = Path(path)
    config = yaml.safe_load(path.read_text()) or {}
    name = context or config.get("current-context")
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
    if name not in contexts:
        raise ValueError(f"{path}: no context {name!r} (set current-context or pass one)")
    ctx = contexts[name]
    clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
    cluster, user = clusters.get(ctx.get("cluster")), users.get(ctx.get("user"), {})
    if not cluster or not cluster.get("server"):
        raise ValueError(f"{path}: context {name!r} names no cluster with a server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    base = path.parent
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_data(cluster, "certificate-authority", base),
        token=token,
        cert_pem=_data(user, "client-certificate", base),
        key_pem=_data(user, "client-key", base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


class Api:
    """JSON requests to one API server. `start()` opens the session, `close()` ends it."""

    def __init__(self, credentials: Credentials, user_agent: str = "koos-node-agent") -> None:
        self.credentials = credentials
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if credentials.token:
            self._headers["Authorization"] = f"Bearer {credentials.token}"
        self._session: aiohttp.ClientSession | None = None
        self._ssl = credentials.ssl_context()

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Api.start() first"
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Obj:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method,
            self.credentials.server + path,
            data=data,
            params=params,
            headers=headers,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            if response.status >= 300:
                raise _failure(response.status, text)
            return json.loads(text) if text else {}

    async def get(self, path: str, **params: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path, params=params or None)
        except ApiFailure as failure:
            if failure.code == 404:
                return None
            raise

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[tuple[str, Obj]]:
        """(type, object) of each event from `resource_version` on, bookmarks included;
        raises WatchGone on 410. Ends when the server ends the stream."""
        params = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "300",
        }
        async with self.session.get(
            self.credentials.server + path,
            params=params,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
        ) as response:
            if response.status == 410:
                raise WatchGone(path)
            if response.status >= 300:
                raise _failure(response.status, await response.text())
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise WatchGone(path)
                    raise _failure(int(obj.get("code") or 500), json.dumps(obj))
                yield str(event.get("type")), obj


def _failure(code: int, text: str) -> ApiFailure:
    try:
        status = json.loads(text)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    return ApiFailure(code, str(status.get("reason", "")), str(status.get("message", text)))
