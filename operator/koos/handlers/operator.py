"""Start the operator: kopf settings, login from the same credentials as our client,
a server-side label selector for the Jobs koos owns, the work queue, metrics.

`run(options)` serves until `stop` is set (tests) or the process is signalled (`koos operator`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

import kopf

from koos.api.constants import GROUP, LABEL_MANAGED_BY, MANAGER
from koos.handlers import admission, approval, execution, metrics, schedule, template
from koos.handlers.notify import Notifier
from koos.handlers.queue import wait_drained
from koos.handlers.webhook_server import WebhookServer
from koos.k8s.client import Kube
from koos.k8s.events import EventSink

log = logging.getLogger("koos.operator")
Flag = asyncio.Event | threading.Event
SELECTOR = f"{LABEL_MANAGED_BY}={MANAGER}"


@dataclass
class Options:
    kubeconfig: str | None = None
    context: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    metrics_port: int | None = 9090
    liveness: str | None = None  # e.g. http://0.0.0.0:8080/healthz
    workers: int = 16
    fast_retries: bool = False  # tests: small kopf backoffs
    webhooks: bool = True  # serve admission webhooks (approvals are unverified without)
    webhook_host: str = "127.0.0.1"  # where the API server reaches them (URL clientConfig)
    webhook_port: int = 0  # 0: any free port
    trust_unverified_approvals: bool = False  # development only
    signing_secret: str = "default/koos-approval-key"  # namespace/name of the signing key
    allow_second_schedules: bool = False  # tests only: 6-field cron with seconds


class NoDiffBase(kopf.DiffBaseStorage):
    """koos registers no create/update/delete handlers (only watches, indexes, webhooks), so
    no diff base is ever needed: building one would deep-copy every event's body."""

    def build(self, *, body: Any, extra_fields: Any = None) -> Any:
        return {}

    def fetch(self, *, body: Any) -> Any:
        return None

    def store(self, *, body: Any, patch: Any, essence: Any) -> None:
        return None


def build_registry(
    options: Options,
    kube: Kube,
    controller: execution.ExecutionController,
    approvals: approval.ApprovalController,
    schedules: schedule.ScheduleController,
    operator_user: str,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=GROUP, v1=False
        )
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.posting.enabled = False  # koos posts its own Events, one per transition
        settings.scanning.disabled = True
        settings.watching.label_selectors["batch/v1/jobs"] = SELECTOR
        settings.watching.connect_timeout = 30
        settings.networking.request_timeout = 60
        if options.fast_retries:
            settings.watching.reconnect_backoff = 0.1
            settings.networking.error_backoffs = [0.1, 0.2, 0.5]
            settings.queueing.error_delays = [0.1, 0.2, 0.5]
        if options.webhooks:
            # HTTPS: kube-apiserver calls URL webhooks over https only.
            settings.admission.server = WebhookServer(
                addr=options.webhook_host,
                port=options.webhook_port or None,
                host=options.webhook_host,
            )
            settings.admission.managed = GROUP
        if kube.events is not None:
            kube.events.start()
        await controller.queue.start()
        await approvals.queue.start()
        await schedules.queue.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await controller.queue.stop()
        await approvals.queue.stop()
        await schedules.queue.stop()
        if kube.events is not None:
            await kube.events.stop()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(kube)

    execution.register(registry, controller)
    template.register(registry, kube)
    approval.register(registry, approvals, operator_user)
    schedule.register(registry, schedules)
    if options.webhooks:
        admission.register(registry, operator_user, kube)
        admission.register_own_requests_skipped(registry, kube, operator_user)
        admission.register_schedule_validation(registry, options.allow_second_schedules)
    return registry


def connection_info(kube: Kube) -> kopf.ConnectionInfo:
    """kopf connects with exactly the credentials of our own client."""
    cfg = kube.configuration
    token = (cfg.api_key or {}).get("BearerToken") or (cfg.api_key or {}).get("authorization")
    scheme = None
    if token and " " in token:
        scheme, token = token.split(" ", 1)
    ca_data = None
    if cfg.ssl_ca_cert:
        with open(cfg.ssl_ca_cert, "rb") as ca:
            ca_data = ca.read()
    return kopf.ConnectionInfo(
        server=cfg.host,
        scheme=scheme or ("Bearer" if token else None),
        token=token,
        ca_data=ca_data,
        insecure=not cfg.verify_ssl,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        default_namespace="default",
    )


async def run(options: Options, stop: Flag | None = None, ready: Flag | None = None) -> None:
    """Serve until `stop` is set (an asyncio.Event, or a threading.Event from another
    thread) or, without one, until SIGINT/SIGTERM (kopf's own handlers)."""
    kube = await Kube.connect(options.kubeconfig, options.context)
    kube.observe = lambda verb, code: metrics.API_REQUESTS.labels(verb.lower(), str(code)).inc()
    operator_user = await admission.whoami(kube)
    namespace, _, secret = options.signing_secret.rpartition("/")
    key = await admission.signing_key(kube, namespace or "default", secret)
    controller = execution.ExecutionController(
        kube,
        workers=options.workers,
        key=key,
        trust_unverified=not options.webhooks and options.trust_unverified_approvals,
    )
    approvals = approval.ApprovalController(
        kube,
        key,
        webhooks=options.webhooks,
        # Unsigned decisions count only where no webhook could have signed them.
        trust_unverified=controller.trust_unverified,
        on_decided=lambda ns, name: controller.queue.add((ns, name)),
        notifier=Notifier(kube),
    )
    schedules = schedule.ScheduleController(
        kube, allow_seconds=options.allow_second_schedules, creator=operator_user
    )
    queues = (controller.queue, approvals.queue, schedules.queue)
    # When many Schedules fire at once, their runs are created first and started after.
    controller.queue.yields_to = (schedules.queue,)

    kube.events = EventSink(kube, idle=lambda: wait_drained(queues))
    registry = build_registry(options, kube, controller, approvals, schedules, operator_user)
    if options.metrics_port is not None:
        metrics.serve(options.metrics_port)
    try:
        await kopf.operator(
            registry=registry,
            clusterwide=not options.namespaces,
            namespaces=list(options.namespaces),
            standalone=True,
            stop_flag=stop,
            ready_flag=ready,
            liveness_endpoint=options.liveness,
        )
    finally:
        await controller.queue.stop()
        if kube.events is not None:
            await kube.events.stop()
        await kube.close()
