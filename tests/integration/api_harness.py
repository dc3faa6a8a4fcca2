"""The integration harness through the Kubernetes API alone, so the same tests run on the
real ground (kube-apiserver, kube-controller-manager and the node agent; `KOOS_GROUND`, see
tests/integration/conftest.py) as on the sandbox.

It offers what `Koos` (the sandbox harness) offers tests — apply and annotate (as the admin or
a user), delete, reads of koos objects, Jobs, Pods and Events, `outcome` (the scripts run
here), the operator in a thread of its own (`OperatorInThread`, shared with `Koos`) — and none
of the sandbox's own controls: a test that reaches for `koos.sandbox` (scripted outcomes,
fault injection, the store, request counts) must be marked `sandbox_only("why")`, or it fails
here saying so. Each test works in a namespace of its own (`namespaces=(ns,)` for the
operator).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from koos.handlers.operator import Options, run
from koos_sandbox.auth import UserInfo
from koos_sandbox.errors import ApiError
from koos_sandbox.testing import async_wait_for

GROUP, VERSION = "koos.io", "v1alpha1"
PLURALS = {
    "Template": "templates",
    "Execution": "executions",
    "Schedule": "schedules",
    "Approval": "approvals",
}
WEBHOOKS = 10  # creator, commands, decision, schedule-creator (mutating); creator-kept,
# template, schedule, execution-status, approval-created, approval-status (validating)


def refusal(exc: ApiException, what: str) -> ApiError:
    """A refusal as the sandbox's harness raises it: its ApiError, with the Status message."""
    try:
        status = json.loads(exc.body or "{}")
    except ValueError:
        status = {}
    message = status.get("message") or f"{what}: {exc.status} {exc.body}"
    return ApiError(exc.status or 0, status.get("reason", ""), message)


def skip_sandbox_only() -> NoReturn:
    """A test reached for a sandbox control on another ground: it lacks its marker."""
    raise AssertionError(
        "this test uses a control only the sandbox has: mark it "
        '@pytest.mark.sandbox_only("why") so that other grounds skip it, saying why'
    )


class ExecutionReads:
    """What both harnesses read of an Execution, given `execution(name)`."""

    finish_timeout: float = 20.0  # seconds a test's run may take, unless it says

    def execution(self, name: str) -> dict[str, Any] | None:
        raise NotImplementedError

    async def finished(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            obj = self.execution(name)
            phase = (obj or {}).get("status", {}).get("phase")
            return obj if phase in ("Succeeded", "Failed", "Cancelled") else None

        return await async_wait_for(
            done, timeout=timeout or self.finish_timeout, what=f"execution {name} to finish"
        )

    def step(self, execution: str, step: str) -> dict[str, Any]:
        obj = self.execution(execution) or {}
        for record in obj.get("status", {}).get("steps", []):
            if record["name"] == step:
                return dict(record)
        raise KeyError(step)


class OperatorInThread:
    """The operator on a loop and thread of its own, as in its own process: kopf treats every
    task of its loop as its own, and a sandbox's must not be among them. Ready once every
    koos webhook is registered and points at this operator's server, over https (not at a
    previous operator's, which no longer answers)."""

    stop: threading.Event
    thread: threading.Thread | None

    def operator_options(self) -> Options:
        raise NotImplementedError

    async def read_webhook_urls(self) -> set[str]:
        """The koos webhooks registered now, as "name url"."""
        raise NotImplementedError

    async def start_operator(self) -> None:
        ready = threading.Event()
        options = self.operator_options()
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=lambda: asyncio.run(run(options, self.stop, ready)), name="operator"
        )
        before = await self.read_webhook_urls()
        self.thread.start()
        await async_wait_for(ready.is_set, timeout=30, what="the operator to be ready")

        async def registered() -> bool:
            urls = await self.read_webhook_urls()
            assert all(" https://" in url for url in urls), urls
            return len(urls) >= WEBHOOKS and not urls & before

        await async_wait_for(registered, timeout=30, what="the operator's webhooks")

    async def stop_operator(self) -> None:
        self.stop.set()
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join, 20)
            if self.thread.is_alive():
                # Slow on a loaded machine, or stuck: say where it is, then give it longer.
                frame = sys._current_frames().get(self.thread.ident or 0)
                stack = "".join(traceback.format_stack(frame)) if frame else "(no frame)"
                logging.getLogger("tests").warning("the operator is still stopping:\n%s", stack)
                await asyncio.to_thread(self.thread.join, 40)
            assert not self.thread.is_alive(), "the operator did not stop within 60 s"
            self.thread = None


@dataclass
class ApiKoos(ExecutionReads, OperatorInThread):
    kubeconfig: Path
    ns: str
    api: client.ApiClient = field(init=False)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    ground: str = "real"
    finish_timeout: float = 60.0  # a Job takes a second longer here (see README)

    def __post_init__(self) -> None:
        self.api = config.new_client_from_config(str(self.kubeconfig))
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)

    # What only the sandbox has.
    @property
    def sandbox(self) -> NoReturn:
        skip_sandbox_only()

    @property
    def admin(self) -> NoReturn:
        skip_sandbox_only()

    def rt(self, *_: Any) -> NoReturn:
        skip_sandbox_only()

    def outcome(self, pattern: str, **outcome: Any) -> None:
        """The Jobs' scripts run here and do this themselves (see `Koos.outcome`)."""

    # Writes.
    async def apply(
        self, manifest: dict[str, Any] | str, by: UserInfo | None = None
    ) -> dict[str, Any]:
        """Create, or merge-patch what exists, as the admin or as user `by`."""
        body = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
        if by is None:
            return await asyncio.to_thread(self._apply, body)
        return await asyncio.to_thread(self.as_user(by.username)._apply, body)

    def as_user(self, user: str) -> ApiKoos:
        """This harness with the credentials of `user` (its context in the kubeconfig)."""
        twin = ApiKoos(self.kubeconfig, self.ns)
        twin.api = config.new_client_from_config(str(self.kubeconfig), context=user)
        twin.custom = client.CustomObjectsApi(twin.api)
        twin.core = client.CoreV1Api(twin.api)
        twin.batch = client.BatchV1Api(twin.api)
        return twin

    def _apply(self, body: dict[str, Any]) -> dict[str, Any]:
        kind, name = body["kind"], body["metadata"]["name"]
        body = {**body, "metadata": {**body["metadata"], "namespace": self.ns}}
        change = {k: v for k, v in body.items() if k in ("spec", "metadata")}
        try:
            if kind in PLURALS:
                plural = PLURALS[kind]
                try:
                    return self.custom.create_namespaced_custom_object(
                        GROUP, VERSION, self.ns, plural, body
                    )
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                return self.custom.patch_namespaced_custom_object(
                    GROUP, VERSION, self.ns, plural, name, change
                )
            create, patch = {
                "Secret": (self.core.create_namespaced_secret, self.core.patch_namespaced_secret),
                "ConfigMap": (
                    self.core.create_namespaced_config_map,
                    self.core.patch_namespaced_config_map,
                ),
            }[kind]
            try:
                return self.api.sanitize_for_serialization(create(self.ns, body))
            except ApiException as exc:
                if exc.status != 409:
                    raise
            return self.api.sanitize_for_serialization(patch(name, self.ns, body))
        except ApiException as exc:
            raise refusal(exc, f"{kind} {name}") from exc

    async def annotate(self, name: str, key: str, value: str, by: UserInfo | None = None) -> None:
        """`kubectl annotate exe <name> key=value`, as the admin or as user `by` (its context
        in the kubeconfig)."""
        custom = self.custom if by is None else self.as_user(by.username).custom
        try:
            await asyncio.to_thread(
                custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                self.ns,
                "executions",
                name,
                {"metadata": {"annotations": {key: value}}},
            )
        except ApiException as exc:
            raise refusal(exc, f"Execution {name}") from exc

    async def delete(
        self,
        plural: str,
        name: str,
        group: str = GROUP,
        version: str = VERSION,
        propagation: str = "Background",
    ) -> None:
        body = client.V1DeleteOptions(propagation_policy=propagation)
        if group == GROUP:
            call = self.custom.delete_namespaced_custom_object
            await asyncio.to_thread(call, group, version, self.ns, plural, name, body=body)
        elif plural == "jobs":
            await asyncio.to_thread(self.batch.delete_namespaced_job, name, self.ns, body=body)
        elif plural == "pods":
            await asyncio.to_thread(self.core.delete_namespaced_pod, name, self.ns, body=body)
        else:
            raise AssertionError(f"delete of {plural} is not offered by this harness")

    # Reads.
    def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            got: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.ns, plural, name
            )
            return got
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def object(self, plural: str, name: str) -> dict[str, Any] | None:
        return self._get(plural, name)

    def objects(self, plural: str) -> list[dict[str, Any]]:
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, plural)
        return list(listed["items"])

    def pods(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(
            self.core.list_namespaced_pod(self.ns)
        )["items"]
        return items

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(
            self.core.list_namespaced_event(self.ns)
        )["items"]
        return items

    def execution(self, name: str) -> dict[str, Any] | None:
        return self._get("executions", name)

    def template(self, name: str) -> dict[str, Any] | None:
        return self._get("templates", name)

    def jobs(self, execution: str | None = None) -> list[dict[str, Any]]:
        selector = f"koos.io/execution={execution}" if execution else None
        jobs = self.batch.list_namespaced_job(self.ns, label_selector=selector)
        items: list[dict[str, Any]] = self.api.sanitize_for_serialization(jobs)["items"]
        return items

    # The operator.
    def operator_options(self) -> Options:
        return Options(
            kubeconfig=str(self.kubeconfig),
            namespaces=(self.ns,),
            metrics_port=None,
            fast_retries=True,
            allow_second_schedules=True,
        )

    async def read_webhook_urls(self) -> set[str]:
        return await asyncio.to_thread(self.webhook_urls)

    def webhook_urls(self) -> set[str]:
        admission = client.AdmissionregistrationV1Api(self.api)
        urls = set()
        for read in (
            admission.read_mutating_webhook_configuration,
            admission.read_validating_webhook_configuration,
        ):
            try:
                config = self.api.sanitize_for_serialization(read("koos.io"))
            except ApiException as exc:
                if exc.status != 404:
                    raise
                continue
            for hook in config.get("webhooks") or []:
                urls.add(f"{hook['name']} {hook.get('clientConfig', {}).get('url')}")
        return urls
