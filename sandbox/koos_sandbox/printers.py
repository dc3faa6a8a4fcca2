"""Server-side printers kube-apiserver 1.32 registers for the built-in kinds the sandbox serves.

A port of pkg/printers/internalversion/printers.go for Pod, Job, Namespace, ConfigMap, Secret,
ServiceAccount, Event, Deployment, Lease, Node, RoleBinding, ClusterRoleBinding and the
admission webhook configurations, plus the apiserver's default convertor (Name, Created At)
used by kinds without a printer (Role, ClusterRole, CustomResourceDefinition). The server
always prints "wide" and kubectl hides priority-1 columns, so every row carries every cell.

Invariants: printers read v1 JSON objects and never mutate them; fields missing from an object
print as the Go zero value would; v1 defaults that a stored object would always carry (Job
completions/parallelism, Deployment replicas) are assumed when absent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from koos_sandbox import columns as cols
from koos_sandbox.goformat import between, parse_time, since

Obj = dict[str, Any]
Row = tuple[list[Any], list[dict[str, str]] | None]
Printer = tuple[list[dict[str, Any]], Callable[[Obj, datetime], Row]]


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _name_age(obj: Obj, now: datetime) -> tuple[str, str]:
    meta = _meta(obj)
    return meta.get("name", ""), since(meta.get("creationTimestamp"), now)


def _true(conditions: Any, kind: str) -> bool:
    """printers.go hasJobCondition: the first condition of that type decides."""
    for cond in conditions or []:
        if cond.get("type") == kind:
            return bool(cond.get("status") == "True")
    return False


def _containers(spec: Obj) -> tuple[str, str]:
    """printers.go layoutContainerCells: names and images, comma-separated."""
    containers = spec.get("containers") or []
    names = ",".join(c.get("name", "") for c in containers)
    return names, ",".join(c.get("image", "") for c in containers)


def label_selector(selector: Obj | None) -> str | None:
    """metav1.LabelSelectorAsSelector(...).String(); None when the selector is invalid."""
    if not selector:
        return ""
    labels = selector.get("matchLabels") or {}
    reqs: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in labels.items()]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator")
        values = sorted(set(expr.get("values") or []))
        shown = {
            "In": f"{key} in ({','.join(values)})",
            "NotIn": f"{key} notin ({','.join(values)})",
        }
        shown |= {"Exists": key, "DoesNotExist": f"!{key}"}
        if op not in shown:
            return None
        reqs.append((key, shown[op]))
    return ",".join(text for _, text in sorted(reqs, key=lambda r: r[0]))


def _format_selector(selector: Obj | None) -> str:
    text = label_selector(selector)
    return "<error>" if text is None else (text or "<none>")


_COMPLETED = {"type": "Completed", "status": "True"}
_POD_SUCCEEDED = [
    {**_COMPLETED, "reason": "Succeeded", "message": "The pod has completed successfully."}
]
_POD_FAILED = [{**_COMPLETED, "reason": "Failed", "message": "The pod failed."}]


def _later(current: datetime | None, state: Obj) -> datetime | None:
    finished = parse_time(
        ((state.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
    )
    if finished is not None and (current is None or current < finished):
        return finished
    return current


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return f"{prefix}{term['reason']}"
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def print_pod(pod: Obj, now: datetime) -> Row:
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, _meta(pod)
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or []
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    row_conditions = {"Succeeded": _POD_SUCCEEDED, "Failed": _POD_FAILED}.get(phase)
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    always = {n for n, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total, ready = len(spec.get("containers") or []) + len(always), 0
    restarts = sidecar_restarts = 0
    last: datetime | None = None
    sidecar_last: datetime | None = None
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        last = _later(last, cs)
        sidecar = cs.get("name") in always
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            sidecar_last = _later(sidecar_last, cs)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting") or {}
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _initialized(conditions):
        restarts, last, running = sidecar_restarts, sidecar_last, False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last = _later(last, cs)
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting") or {}
            if wait.get("reason"):
                reason = wait["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                running, ready = True, ready + 1
        if reason == "Completed" and running:
            reason = "Running" if _true(conditions, "Ready") else "NotReady"
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Failed", "Succeeded"):
        reason = "Terminating"
    shown = str(restarts)
    if restarts and last is not None:
        shown = f"{restarts} ({between(last, now)} ago)"
    name, age = _name_age(pod, now)
    ips = status.get("podIPs") or ([{"ip": status["podIP"]}] if status.get("podIP") else [])
    gates = spec.get("readinessGates") or []
    gate_text = "<none>"
    if gates:
        passed = sum(1 for g in gates if _true(conditions, g.get("conditionType", "")))
        gate_text = f"{passed}/{len(gates)}"
    wide = [ips[0].get("ip") if ips else "", spec.get("nodeName"), status.get("nominatedNodeName")]
    cells = [
        name,
        f"{ready}/{total}",
        reason,
        shown,
        age,
        *[w or "<none>" for w in wide],
        gate_text,
    ]
    return cells, row_conditions


def _initialized(conditions: list[Obj]) -> bool:
    for cond in conditions:
        if cond.get("type") == "Initialized":
            return bool(cond.get("status") == "True")
    return False


def print_job(job: Obj, now: datetime) -> Row:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = int(status.get("succeeded") or 0)
    completions, parallelism = spec.get("completions"), spec.get("parallelism")
    if completions is None and parallelism is None:
        completions = 1  # SetDefaults_Job sets both to 1 when neither is given
    if completions is not None:
        done = f"{succeeded}/{completions}"
    else:
        done = f"{succeeded}/1 of {parallelism}" if (parallelism or 0) > 1 else f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    took = "" if start is None else between(start, end or now)
    conditions = status.get("conditions")
    if _true(conditions, "Complete"):
        state = "Complete"
    elif _true(conditions, "Failed"):
        state = "Failed"
    elif _meta(job).get("deletionTimestamp"):
        state = "Terminating"
    elif _true(conditions, "Suspended"):
        state = "Suspended"
    elif _true(conditions, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    name, age = _name_age(job, now)
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [
        name,
        state,
        done,
        took,
        age,
        names,
        images,
        _format_selector(spec.get("selector")),
    ], None


def print_deployment(deploy: Obj, now: datetime) -> Row:
    spec, status = deploy.get("spec") or {}, deploy.get("status") or {}
    desired = spec.get("replicas", 1)
    name, age = _name_age(deploy, now)
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    selector = label_selector(spec.get("selector"))
    ready = f"{int(status.get('readyReplicas') or 0)}/{desired}"
    counts = [int(status.get("updatedReplicas") or 0), int(status.get("availableReplicas") or 0)]
    return [
        name,
        ready,
        *counts,
        age,
        names,
        images,
        "<invalid>" if selector is None else selector,
    ], None


def print_event(event: Obj, now: datetime) -> Row:
    first = since(event.get("firstTimestamp"), now)
    if parse_time(event.get("firstTimestamp")) is None:
        first = since(event.get("eventTime"), now)
    last = (
        since(event.get("lastTimestamp"), now) if parse_time(event.get("lastTimestamp")) else first
    )
    count = int(event.get("count") or 0)
    series = event.get("series")
    if series is not None:
        last, count = since(series.get("lastObservedTime"), now), int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = event.get("involvedObject") or {}
    target = (involved.get("kind") or "").lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    origin = f"{component}, {instance}" if instance else component
    message = (event.get("message") or "").strip()
    cells = [last, event.get("type", ""), event.get("reason", ""), target]
    cells += [
        involved.get("fieldPath", ""),
        origin,
        message,
        first,
        count,
        _meta(event).get("name", ""),
    ]
    return cells, None


def print_node(node: Obj, now: datetime) -> Row:
    status, labels = node.get("status") or {}, _meta(node).get("labels") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"][-1:]
    states = [("Ready" if c.get("status") == "True" else "NotReady") for c in ready] or ["Unknown"]
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    prefix = "node-role.kubernetes.io/"
    roles = {k[len(prefix) :] for k in labels if k.startswith(prefix)}
    roles |= {labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()
    roles.discard("")
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((a.get("address", "") for a in addresses if a.get("type") == kind), "<none>")

    name, age = _name_age(node, now)
    cells = [
        name,
        ",".join(states),
        ",".join(sorted(roles)) or "<none>",
        age,
        info.get("kubeletVersion", ""),
    ]
    cells += [address("InternalIP"), address("ExternalIP")]
    cells += [
        info.get(k) or "<unknown>" for k in ("osImage", "kernelVersion", "containerRuntimeVersion")
    ]
    return cells, None


def _binding(binding: Obj, now: datetime) -> Row:
    ref = binding.get("roleRef") or {}
    users, groups, accounts = [], [], []
    for subject in binding.get("subjects") or []:
        kind, sname = subject.get("kind"), subject.get("name", "")
        if kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{sname}")
        elif kind == "User":
            users.append(sname)
        elif kind == "Group":
            groups.append(sname)
    name, age = _name_age(binding, now)
    role = f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return [name, role, age, ", ".join(users), ", ".join(groups), ", ".join(accounts)], None


def _simple(*cells: Callable[[Obj], Any]) -> Callable[[Obj, datetime], Row]:
    """A printer whose cells are Name, the given values, then Age."""

    def printer(obj: Obj, now: datetime) -> Row:
        name, age = _name_age(obj, now)
        return [name, *(cell(obj) for cell in cells), age], None

    return printer


def _len(obj: Obj, *keys: str) -> int:
    return sum(len(obj.get(k) or []) for k in keys)


def _webhooks(obj: Obj) -> int:
    return _len(obj, "webhooks")


PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Pod"): (cols.POD, print_pod),
    ("batch", "Job"): (cols.JOB, print_job),
    ("", "Namespace"): (
        cols.NAMESPACE,
        _simple(lambda o: (o.get("status") or {}).get("phase", "")),
    ),
    ("", "ConfigMap"): (cols.CONFIGMAP, _simple(lambda o: _len(o, "data", "binaryData"))),
    ("", "Secret"): (cols.SECRET, _simple(lambda o: o.get("type", ""), lambda o: _len(o, "data"))),
    ("", "ServiceAccount"): (cols.SERVICE_ACCOUNT, _simple(lambda o: _len(o, "secrets"))),
    ("", "Event"): (cols.EVENT, print_event),
    ("apps", "Deployment"): (cols.DEPLOYMENT, print_deployment),
    ("coordination.k8s.io", "Lease"): (
        cols.LEASE,
        _simple(lambda o: (o.get("spec") or {}).get("holderIdentity") or ""),
    ),
    ("", "Node"): (cols.NODE, print_node),
    ("rbac.authorization.k8s.io", "RoleBinding"): (cols.ROLE_BINDING, _binding),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): (cols.CLUSTER_ROLE_BINDING, _binding),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"): (
        cols.WEBHOOKS,
        _simple(_webhooks),
    ),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"): (
        cols.WEBHOOKS,
        _simple(_webhooks),
    ),
}


def _created_at(obj: Obj, now: datetime) -> Row:
    moment = parse_time(_meta(obj).get("creationTimestamp"))
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "0001-01-01T00:00:00Z"
    return [_meta(obj).get("name", ""), stamp], None


DEFAULT_PRINTER: Printer = ([cols.NAME, cols.CREATED_AT], _created_at)


def printer_for(group: str, kind: str) -> tuple[Printer, bool]:
    """The printer for a built-in kind, and whether it is the default convertor."""
    found = PRINTERS.get((group, kind))
    return (found, False) if found is not None else (DEFAULT_PRINTER, True)
