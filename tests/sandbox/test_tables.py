"""Table responses: JSONPath, HumanDuration, the CRD convertor and the built-in printers."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos_sandbox.errors import ApiError
from koos_sandbox.registry import BUILTINS, ResourceType
from koos_sandbox.tables import build_table, evaluate_jsonpath, human_duration

pytestmark = pytest.mark.sandbox_only(
    reason="unit tests of the sandbox's table printers (no server)"
)

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ago(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def builtin(kind: str) -> ResourceType:
    return next(rt for rt in BUILTINS if rt.kind == kind)


def cells(kind: str, obj: dict[str, Any]) -> list[Any]:
    row = build_table(builtin(kind), [obj], now=NOW)["rows"][0]
    return list(row["cells"])


# --- JSONPath ------------------------------------------------------------------------------

DOC = {
    "metadata": {
        "name": "run-1",
        "labels": {"app": "koos"},
        "annotations": {"koos.io/x": "dotted", "a.b": "literal"},
    },
    "spec": {
        "steps": [{"name": "first"}, {"name": "second"}],
        "items": [{"name": "i0"}, {"name": "i1", "size": 2}],
        "nothing": None,
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Synced", "status": "False"},
        ],
    },
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".status.phase", ["Running"]),
        ("{.status.phase}", ["Running"]),
        (".spec.steps[0].name", ["first"]),
        (".spec.steps[-1].name", ["second"]),
        (".metadata.labels.app", ["koos"]),
        (".spec.items[*].name", ["i0", "i1"]),
        (".spec.items[0:1].name", ["i0"]),
        (".spec.items[0,1].name", ["i0", "i1"]),
        (".spec.items[*].size", [2]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.status!='True')].type", ["Synced"]),
        (".spec.items[?(@.size)].name", ["i1"]),
        (".metadata.annotations['koos\\.io/x']", ["dotted"]),
        (".metadata.annotations.koos\\.io/x", ["dotted"]),
        ('.metadata.annotations["a.b"]', ["literal"]),
        (".metadata.annotations['a.b']", []),
        (".spec.nothing", [None]),
        (".spec.missing.deeper", []),
        (".status.phase.deeper", []),
        (".spec.steps[5].name", []),
        (".status.phase[0]", []),
        (".status.conditions[?(@.type==1)].status", []),
        ("..name", ["run-1", "first", "second", "i0", "i1"]),
    ],
)
def test_evaluate_jsonpath(path: str, expected: list[Any]) -> None:
    assert evaluate_jsonpath(DOC, path) == expected


# --- HumanDuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-3, "<invalid>"),
        (-1.5, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (192, "3m12s"),
        (599, "9m59s"),
        (600, "10m"),
        (119 * 60, "119m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (7 * 3600 + 5 * 60, "7h5m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400 - 1, "7d23h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (750 * 86400, "2y20d"),
        (8 * 365 * 86400, "8y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


# --- custom resources ----------------------------------------------------------------------

RUNS = ResourceType(
    group="koos.io",
    version="v1",
    kind="Execution",
    plural="executions",
    singular="execution",
    namespaced=True,
    custom=True,
    printer_columns=(
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
        {"name": "Steps", "type": "integer", "jsonPath": ".spec.count", "priority": 1},
        {"name": "Score", "type": "number", "jsonPath": ".status.score", "format": "float"},
        {"name": "Done", "type": "boolean", "jsonPath": ".status.done", "description": "Finished?"},
        {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
    ),
)


def run(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "koos.io/v1",
        "kind": "Execution",
        "metadata": {
            "name": "e1",
            "namespace": "default",
            "resourceVersion": "42",
            "creationTimestamp": ago(hours=1),
            "labels": {"b": "2", "a": "<1>"},
        },
        "spec": {"count": 3.9},
        "status": status,
    }


def test_crd_table_columns_and_cells() -> None:
    table = build_table(
        RUNS,
        [
            run(
                phase="Running",
                startTime=ago(seconds=192),
                done=True,
                score=2,
                conditions=[
                    {"type": "Synced", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
            )
        ],
        now=NOW,
    )
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    defs = table["columnDefinitions"]
    assert [d["name"] for d in defs] == [
        "Name",
        "Phase",
        "Ready",
        "Started",
        "Steps",
        "Score",
        "Done",
        "Labels",
    ]
    assert defs[0]["format"] == "name" and defs[0]["type"] == "string"
    assert (
        defs[1]["description"]
        == "Custom resource definition column (in JSONPath format): .status.phase"
    )
    assert defs[4]["priority"] == 1 and defs[5]["format"] == "float"
    assert defs[6]["description"] == "Finished?"
    row = table["rows"][0]
    assert row["cells"] == [
        "e1",
        "Running",
        "True",
        "3m12s",
        3,
        2.0,
        True,
        '{"a":"\\u003c1\\u003e","b":"2"}',
    ]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": run()["metadata"],
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, ["e1", None, None, None, 3, None, None]),
        (
            {"phase": None, "startTime": "", "score": "high", "done": "yes"},
            ["e1", "<no value>", None, "<unknown>", 3, None, None],
        ),
        ({"startTime": "not-a-time"}, ["e1", None, None, "<invalid>", 3, None, None]),
        ({"startTime": ago(seconds=-10)}, ["e1", None, None, "<invalid>", 3, None, None]),
        (
            {"conditions": [{"status": "True"}, {"type": "Ready", "status": "True"}]},
            ["e1", None, None, None, 3, None, None],
        ),
    ],
)
def test_crd_cells_when_values_are_missing_or_mistyped(
    status: dict[str, Any], expected: list[Any]
) -> None:
    row = build_table(RUNS, [run(**status)], now=NOW)["rows"][0]
    assert row["cells"][:7] == expected


def test_crd_without_printer_columns_gets_age() -> None:
    plain = ResourceType("koos.io", "v1", "Template", "templates", "template", True, custom=True)
    table = build_table(plain, [run()], now=NOW)
    assert [(d["name"], d["type"]) for d in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Age", "date"),
    ]
    assert table["rows"][0]["cells"] == ["e1", "60m"]


def test_include_object_and_headers() -> None:
    obj = run(phase="Done")
    full = build_table(RUNS, [obj], now=NOW, include_object="Object")["rows"][0]["object"]
    assert full == obj and full is not obj
    assert build_table(RUNS, [obj], now=NOW, include_object="None")["rows"][0]["object"] is None
    assert build_table(RUNS, [obj], now=NOW, include_object=None)["rows"][0]["object"] is None
    quiet = build_table(RUNS, [obj], now=NOW, with_column_definitions=False)
    assert quiet["columnDefinitions"] is None
    listed = build_table(
        RUNS, [obj, obj], now=NOW, list_meta={"resourceVersion": "9", "continue": "c"}
    )
    assert listed["metadata"] == {"resourceVersion": "9", "continue": "c"}
    with pytest.raises(ApiError) as raised:
        build_table(RUNS, [obj], now=NOW, include_object="Everything")
    assert raised.value.code == 400
    assert raised.value.message == 'unrecognized includeObject value: "Everything"'


def test_build_table_does_not_mutate_objects() -> None:
    obj = run(phase="Done")
    before = copy.deepcopy(obj)
    table = build_table(RUNS, [obj], now=NOW)
    table["rows"][0]["object"]["metadata"]["name"] = "changed"
    assert obj == before


# --- pods ----------------------------------------------------------------------------------


def pod(phase: str, statuses: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    status = {"phase": phase, "containerStatuses": statuses, **extra.pop("status", {})}
    return {
        "metadata": {"name": "p", "creationTimestamp": ago(minutes=5), **extra.pop("metadata", {})},
        "spec": {"containers": [{"name": s["name"]} for s in statuses] or [{"name": "c"}], **extra},
        "status": status,
    }


def container(name: str = "c", **state: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": state.pop("ready", False),
        "restartCount": state.pop("restarts", 0),
        **state,
    }


POD_CASES = [
    pytest.param(
        pod(
            "Running",
            [container(ready=True, state={"running": {}})],
            status={"podIPs": [{"ip": "10.0.0.5"}]},
            nodeName="node-1",
        ),
        ["p", "1/1", "Running", "0", "5m", "10.0.0.5", "node-1", "<none>", "<none>"],
        id="running",
    ),
    pytest.param(
        pod("Succeeded", [container(state={"terminated": {"exitCode": 0, "reason": "Completed"}})]),
        ["p", "0/1", "Completed", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="completed",
    ),
    pytest.param(
        pod("Pending", []),
        ["p", "0/1", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="pending-unscheduled",
    ),
    pytest.param(
        pod("Pending", [container(state={"waiting": {"reason": "ContainerCreating"}})]),
        ["p", "0/1", "ContainerCreating", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="container-creating",
    ),
    pytest.param(
        pod("Failed", [container(state={"terminated": {"exitCode": 1, "reason": "Error"}})]),
        ["p", "0/1", "Error", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="failed-container",
    ),
    pytest.param(
        pod(
            "Running",
            [
                container(
                    restarts=3,
                    state={"waiting": {"reason": "CrashLoopBackOff"}},
                    lastState={"terminated": {"exitCode": 2, "finishedAt": ago(seconds=90)}},
                )
            ],
        ),
        [
            "p",
            "0/1",
            "CrashLoopBackOff",
            "3 (90s ago)",
            "5m",
            "<none>",
            "<none>",
            "<none>",
            "<none>",
        ],
        id="crash-loop-with-restarts",
    ),
    pytest.param(
        pod("Failed", [container(state={"terminated": {"exitCode": 137}})]),
        ["p", "0/1", "ExitCode:137", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="terminated-without-reason",
    ),
    pytest.param(
        pod(
            "Pending",
            [container()],
            initContainers=[{"name": "init"}],
            status={"initContainerStatuses": [container("init", state={"running": {}})]},
        ),
        ["p", "0/1", "Init:0/1", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="initializing",
    ),
    pytest.param(
        pod(
            "Running",
            [container(ready=True, state={"running": {}})],
            metadata={"deletionTimestamp": ago(seconds=1)},
        ),
        ["p", "1/1", "Terminating", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
        id="terminating",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), POD_CASES)
def test_pod_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Pod", obj) == expected


def test_pod_columns_and_row_conditions() -> None:
    table = build_table(
        builtin("Pod"),
        [
            pod(
                "Succeeded",
                [container(state={"terminated": {"exitCode": 0, "reason": "Completed"}})],
            )
        ],
        now=NOW,
    )
    defs = table["columnDefinitions"]
    assert [(d["name"], d["priority"]) for d in defs] == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert table["rows"][0]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


# --- jobs and other built-ins --------------------------------------------------------------


def job(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    template = {
        "spec": {
            "containers": [{"name": "main", "image": "busybox"}, {"name": "side", "image": "nginx"}]
        }
    }
    return {
        "metadata": {"name": "j", "creationTimestamp": ago(minutes=30)},
        "spec": {"template": template, **spec},
        "status": status,
    }


JOB_CASES = [
    pytest.param(
        job(
            {"completions": 1, "selector": {"matchLabels": {"b": "2", "a": "1"}}},
            {
                "succeeded": 1,
                "startTime": ago(minutes=20),
                "completionTime": ago(minutes=17),
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        ),
        ["j", "Complete", "1/1", "3m", "30m", "main,side", "busybox,nginx", "a=1,b=2"],
        id="complete",
    ),
    pytest.param(
        job({"completions": 3, "parallelism": 3}, {"succeeded": 1, "startTime": ago(seconds=45)}),
        ["j", "Running", "1/3", "45s", "30m", "main,side", "busybox,nginx", "<none>"],
        id="running",
    ),
    pytest.param(
        job({"parallelism": 3}, {}),
        ["j", "Running", "0/1 of 3", "", "30m", "main,side", "busybox,nginx", "<none>"],
        id="work-queue",
    ),
    pytest.param(
        job({}, {}),
        ["j", "Running", "0/1", "", "30m", "main,side", "busybox,nginx", "<none>"],
        id="defaults",
    ),
    pytest.param(
        job(
            {"completions": 1},
            {
                "conditions": [
                    {"type": "FailureTarget", "status": "True"},
                    {"type": "Failed", "status": "True"},
                ]
            },
        ),
        ["j", "Failed", "0/1", "", "30m", "main,side", "busybox,nginx", "<none>"],
        id="failed",
    ),
    pytest.param(
        job(
            {"completions": 1, "suspend": True},
            {"conditions": [{"type": "Suspended", "status": "True"}]},
        ),
        ["j", "Suspended", "0/1", "", "30m", "main,side", "busybox,nginx", "<none>"],
        id="suspended",
    ),
    pytest.param(
        job(
            {
                "completions": 2,
                "selector": {
                    "matchExpressions": [
                        {"key": "k", "operator": "In", "values": ["y", "x"]},
                        {"key": "gone", "operator": "DoesNotExist"},
                    ]
                },
            },
            {"conditions": [{"type": "Complete", "status": "False"}]},
        ),
        ["j", "Running", "0/2", "", "30m", "main,side", "busybox,nginx", "!gone,k in (x,y)"],
        id="false-condition-and-expressions",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), JOB_CASES)
def test_job_rows(obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells("Job", obj) == expected


def test_job_columns() -> None:
    defs = build_table(builtin("Job"), [], now=NOW)["columnDefinitions"]
    assert [(d["name"], d["priority"]) for d in defs] == [
        ("Name", 0),
        ("Status", 0),
        ("Completions", 0),
        ("Duration", 0),
        ("Age", 0),
        ("Containers", 1),
        ("Images", 1),
        ("Selector", 1),
    ]


def meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(days=3, hours=4), **extra}


OTHER_CASES = [
    (
        "Namespace",
        {"metadata": meta("koos"), "status": {"phase": "Active"}},
        ["koos", "Active", "3d4h"],
    ),
    (
        "ConfigMap",
        {"metadata": meta(), "data": {"a": "1"}, "binaryData": {"b": "AA=="}},
        ["x", 2, "3d4h"],
    ),
    (
        "Secret",
        {"metadata": meta(), "type": "Opaque", "data": {"a": "MQ=="}},
        ["x", "Opaque", 1, "3d4h"],
    ),
    ("ServiceAccount", {"metadata": meta("default")}, ["default", 0, "3d4h"]),
    (
        "Lease",
        {"metadata": meta("leader"), "spec": {"holderIdentity": "pod-1"}},
        ["leader", "pod-1", "3d4h"],
    ),
    (
        "MutatingWebhookConfiguration",
        {"metadata": meta("hooks"), "webhooks": [{}, {}]},
        ["hooks", 2, "3d4h"],
    ),
    (
        "Deployment",
        {
            "metadata": meta("web"),
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {"containers": [{"name": "w", "image": "nginx"}]}},
            },
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        },
        ["web", "2/3", 3, 2, "3d4h", "w", "nginx", "app=web"],
    ),
    (
        "Event",
        {
            "metadata": meta("p.1"),
            "type": "Warning",
            "reason": "BackOff",
            "message": " Back-off restarting \n",
            "count": 4,
            "firstTimestamp": ago(minutes=10),
            "lastTimestamp": ago(seconds=30),
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{c}"},
            "source": {"component": "kubelet", "host": "node-1"},
        },
        [
            "30s",
            "Warning",
            "BackOff",
            "pod/p",
            "spec.containers{c}",
            "kubelet, node-1",
            "Back-off restarting",
            "10m",
            4,
            "p.1",
        ],
    ),
    (
        "Event",
        {
            "metadata": meta("e.2"),
            "type": "Normal",
            "reason": "Started",
            "eventTime": "2024-06-01T11:59:00.000000Z",
            "reportingComponent": "koos",
            "involvedObject": {"kind": "Execution"},
        },
        ["60s", "Normal", "Started", "execution", "", "koos", "", "60s", 1, "e.2"],
    ),
    (
        "Node",
        {
            "metadata": meta(
                "n1",
                labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "infra"},
            ),
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0"},
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            },
        },
        [
            "n1",
            "Ready,SchedulingDisabled",
            "control-plane,infra",
            "3d4h",
            "v1.32.0",
            "10.0.0.1",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ],
    ),
    (
        "RoleBinding",
        {
            "metadata": meta("rb"),
            "roleRef": {"kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"kind": "User", "name": "ann"},
                {"kind": "ServiceAccount", "namespace": "koos", "name": "op"},
                {"kind": "Group", "name": "devs"},
            ],
        },
        ["rb", "ClusterRole/edit", "3d4h", "ann", "devs", "koos/op"],
    ),
    (
        "Role",
        {"metadata": meta("r", creationTimestamp="2024-05-01T10:00:00+02:00")},
        ["r", "2024-05-01T08:00:00Z"],
    ),
    (
        "CustomResourceDefinition",
        {"metadata": {"name": "runs.koos.io"}},
        ["runs.koos.io", "0001-01-01T00:00:00Z"],
    ),
]


@pytest.mark.parametrize(
    ("kind", "obj", "expected"), OTHER_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(OTHER_CASES)]
)
def test_other_builtin_rows(kind: str, obj: dict[str, Any], expected: list[Any]) -> None:
    assert cells(kind, obj) == expected


def test_event_columns_start_with_last_seen() -> None:
    defs = build_table(builtin("Event"), [], now=NOW)["columnDefinitions"]
    assert [d["name"] for d in defs if d["priority"] == 0] == [
        "Last Seen",
        "Type",
        "Reason",
        "Object",
        "Message",
    ]
    assert defs[-1]["name"] == "Name" and defs[-1]["format"] == "name"


def test_default_convertor_columns_and_empty_rows() -> None:
    table = build_table(builtin("ClusterRole"), [], now=NOW)
    assert [(d["name"], d["type"]) for d in table["columnDefinitions"]] == [
        ("Name", "string"),
        ("Created At", "date"),
    ]
    assert table["rows"] is None
    assert build_table(builtin("Pod"), [], now=NOW)["rows"] == []
