"""The one door to the API server: JSON requests over one shared aiohttp session.

The `kubernetes` asyncio client's config loader fills a `Configuration` (in-cluster token
file, or a kubeconfig's token, client certificate and CA data); koos builds plain dicts (the
engine's manifests), so requests go straight through an aiohttp session set up from that
Configuration exactly as the generated client sets up its own (TLS context, connection pool,
bearer token with its refresh hook, proxy), with explicit paths and content types — without
the generated client's per-request serialisation, and without looking up netrc and proxy
settings from the environment for every request (`trust_env=False`, as kopf's own session).
Failures become `KubeError` with the Status code and reason, which callers sort into
"not found", "conflict" and "transient".
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import aiohttp
from kubernetes.aio import __version__ as kubernetes_version
from kubernetes.aio import config as kube_config
from kubernetes.aio.client import Configuration

from koos.api.constants import GROUP, VERSION

if TYPE_CHECKING:
    from koos.k8s.events import EventSink

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
JSON = "application/json"
USER_AGENT = f"OpenAPI-Generator/{kubernetes_version}/python"  # as the generated client
TIMEOUT = aiohttp.ClientTimeout(total=5 * 60)  # as the generated client
KEEPALIVE = 90.0  # seconds an idle connection stays in the pool (Go's transport: 90 s)


class KubeError(Exception):
    def __init__(self, code: int, reason: str, message: str, retry_after: float | None = None):
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.code in (0, 429) or self.code >= 500


def custom_path(plural: str, namespace: str, name: str = "", subresource: str = "") -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{quote(namespace)}/{plural}"
    if name:
        path += f"/{quote(name)}"
    if subresource:
        path += f"/{subresource}"
    return path


def job_path(namespace: str, name: str = "") -> str:
    path = f"/apis/batch/v1/namespaces/{quote(namespace)}/jobs"
    return f"{path}/{quote(name)}" if name else path


def event_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/events"


def ssl_context(configuration: Configuration) -> ssl.SSLContext:
    """The TLS context the generated client builds from the same Configuration."""
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data
    )
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


@dataclass
class Kube:
    configuration: Configuration
    observe: Callable[[str, int], None] | None = None  # (HTTP method, status) per request
    events: EventSink | None = None  # set: Events are posted in the background (k8s.events)
    session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        configuration = Configuration()
        if kubeconfig is None:
            try:
                kube_config.load_incluster_config(client_configuration=configuration)
            except kube_config.ConfigException:
                await kube_config.load_kube_config(
                    context=context, client_configuration=configuration
                )
        else:
            await kube_config.load_kube_config(
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
        return cls(configuration)

    def _session(self) -> aiohttp.ClientSession:
        """One session (and connection pool) for every request, made on first use so that
        it belongs to the running loop."""
        if self.session is None:
            cfg = self.configuration
            limit_per_host = getattr(cfg, "tcp_connector_limit_per_host", None)
            connector = aiohttp.TCPConnector(
                limit=cfg.connection_pool_maxsize,
                ssl=ssl_context(cfg),
                # Kept open across a quiet minute (aiohttp's default is 15 s), so that a burst
                # after one does not start with a storm of TLS handshakes; the API server
                # closes what it does not want to keep.
                keepalive_timeout=KEEPALIVE,
                **({"limit_per_host": limit_per_host} if limit_per_host is not None else {}),
            )
            self.session = aiohttp.ClientSession(
                connector=connector, trust_env=False, read_bufsize=2**21, timeout=TIMEOUT
            )
        return self.session

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        cfg = self.configuration
        url = cfg.host + path + (f"?{urlencode(dict(query))}" if query else "")
        headers = {"Accept": JSON, "User-Agent": USER_AGENT, "Content-Type": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        extra: dict[str, Any] = {}
        if cfg.tls_server_name:
            extra["server_hostname"] = cfg.tls_server_name
        if cfg.proxy:
            extra["proxy"] = cfg.proxy
        if cfg.proxy_headers:
            extra["proxy_headers"] = cfg.proxy_headers
        # Outside the try: a body that cannot be encoded is a bug to report as itself, not
        # a connection error to retry forever.
        data = json.dumps(body, allow_nan=False).encode() if body is not None else None
        try:
            # The refresh hook (in-cluster: the rotated token file) runs as before.
            token = await cfg.get_api_key_with_prefix("BearerToken", alias="authorization")
            if token:
                headers["authorization"] = token
            async with self._session().request(
                method, url, headers=headers, data=data, **extra
            ) as response:
                raw = await response.read()
        except KubeError:
            raise
        except Exception as exc:  # connection refused, reset, timeout: all transient
            if self.observe is not None:
                self.observe(method, 0)
            raise KubeError(0, "ConnectionError", str(exc)) from exc
        status = response.status
        if self.observe is not None:
            self.observe(method, status)
        payload: dict[str, Any] = json.loads(raw) if raw else {}
        if 200 <= status < 300:
            return payload
        retry_after = response.headers.get("Retry-After")
        raise KubeError(
            status,
            str(payload.get("reason", "")),
            str(payload.get("message", raw[:200])),
            float(retry_after) if retry_after else None,
        )

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def find(self, path: str) -> dict[str, Any] | None:
        """GET, with None for an object that does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as error:
            if error.code == 404:
                return None
            raise

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", path, body=body)

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    async def delete(self, path: str, propagation: str = "Background") -> dict[str, Any]:
        return await self.request(
            "DELETE",
            path,
            body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
        )
