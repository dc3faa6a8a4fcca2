"""Prometheus metrics of the operator, served on a port of their own (DESIGN.md §4)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from koos.k8s.apply import NotOurs
from koos.k8s.client import KubeError

REGISTRY = CollectorRegistry(auto_describe=True)

EXECUTIONS = Counter(
    "koos_executions_total",
    "Executions that reached a terminal phase, by phase.",
    ["phase"],
    registry=REGISTRY,
)
ACTIVE = Gauge(
    "koos_executions_active", "Executions started and not yet finished.", registry=REGISTRY
)
EXECUTION_SECONDS = Histogram(
    "koos_execution_duration_seconds",
    "From the start of an Execution to its end, by phase.",
    ["phase"],
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400),
    registry=REGISTRY,
)
STEP_SECONDS = Histogram(
    "koos_step_duration_seconds",
    "From the start of a step to its end, by phase.",
    ["phase"],
    buckets=(0.5, 1, 5, 15, 30, 60, 300, 900, 3600, 21600),
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "koos_reconcile_duration_seconds",
    "Time to gather, plan and apply one reconcile of an Execution.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
RECONCILE_SKIPPED = Counter(
    "koos_reconcile_skipped_total",
    "Reconciles of an Execution not run: all that woke it was the echo of koos's own write.",
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "koos_reconcile_errors_total",
    "Reconciles that failed, by kind of error: connection (no answer from the API server), "
    "throttled (429), server (5xx), conflict (409, or a child name another owner holds), "
    "refused (another 4xx), internal (any other exception).",
    ["kind"],
    registry=REGISTRY,
)


def error_kind(error: BaseException) -> str:
    """The `kind` label of a reconcile error, from the error itself (never a guess: a
    ValueError is internal, not a connection error)."""
    if isinstance(error, NotOurs):
        return "conflict"
    if not isinstance(error, KubeError):
        return "internal"
    code = error.code
    if code == 0:
        return "connection"
    if code == 409:
        return "conflict"
    if code == 429:
        return "throttled"
    if code >= 500:
        return "server"
    return "refused"


API_REQUESTS = Counter(
    "koos_api_requests_total",
    "Requests the operator sent to the API server, by verb and response code.",
    ["verb", "code"],
    registry=REGISTRY,
)


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address, registry=REGISTRY)


APPROVALS_PENDING = Gauge(
    "koos_approvals_pending", "Approvals waiting for a decision.", registry=REGISTRY
)
APPROVAL_SECONDS = Histogram(
    "koos_approval_decision_seconds",
    "From an Approval's creation to its decision or expiry, by outcome.",
    ["outcome"],
    buckets=(10, 60, 300, 900, 1800, 3600, 14400, 43200, 86400, 259200),
    registry=REGISTRY,
)
SCHEDULE_FIRES = Counter(
    "koos_schedule_fires_total", "Executions created by Schedules.", registry=REGISTRY
)
SCHEDULE_LAG_SECONDS = Histogram(
    "koos_schedule_lag_seconds",
    "From a fire's scheduled time to the creation of its Execution.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
