"""The one door to the API server: JSON requests over the `kubernetes` asyncio client.

The typed methods of the generated client want their own models; koos builds plain dicts
(the engine's manifests), so requests go through the client's configured transport (auth,
TLS, proxy) with explicit paths and content types. Failures become `KubeError` with the
Status code and reason, which callers sort into "not found", "conflict" and "transient".
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from kubernetes.aio import config as kube_config
from kubernetes.aio.client import ApiClient, Configuration

from koos.api.constants import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"


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


@dataclass
class Kube:
    api: ApiClient
    observe: Callable[[str, int], None] | None = None  # (HTTP method, status) per request

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
        return cls(ApiClient(configuration))

    @property
    def configuration(self) -> Configuration:
        return self.api.configuration

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = JSON,
    ) -> dict[str, Any]:
        url = path + (f"?{urlencode(dict(query))}" if query else "")
        headers = {"Accept": JSON}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            method, full_url, headers, data, _ = await self.api.param_serialize(
                method, url, header_params=headers, body=body, auth_settings=["BearerToken"]
            )
            response = await self.api.call_api(method, full_url, headers, data)
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
        retry_after = response.getheader("Retry-After")
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
