"""Patch semantics of the sandbox: RFC 7386, RFC 6902 as kube-apiserver reads it, and SMP."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from koos_sandbox.errors import ApiError
from koos_sandbox.patch import (
    check_strategic_supported,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

pytestmark = pytest.mark.sandbox_only(reason="unit tests of the sandbox's patch module (no server)")

REJECTED = "the server rejected our request due to an error in our request"


def _no_directives(value: Any) -> bool:
    if isinstance(value, dict):
        return all(not k.startswith("$") and _no_directives(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_directives(v) for v in value)
    return True


# ---- merge patch: RFC 7386 appendix A -----------------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386)
def test_merge_patch_rfc7386_appendix(target: Any, patch: Any, expected: Any) -> None:
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    assert merge_patch(target, patch) == expected
    assert (target, patch) == before


def test_merge_patch_result_shares_nothing_with_inputs() -> None:
    target = {"spec": {"list": [1]}}
    patch = {"spec": {"other": {"x": [2]}}}
    result = merge_patch(target, patch)
    result["spec"]["list"].append(9)
    result["spec"]["other"]["x"].append(9)
    assert target == {"spec": {"list": [1]}}
    assert patch == {"spec": {"other": {"x": [2]}}}


# ---- JSON patch: RFC 6902 appendix A ------------------------------------------------------

RFC6902 = [
    (  # A.1
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"foo": "bar", "baz": "qux"},
    ),
    (  # A.2
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    (  # A.3
        {"baz": "qux", "foo": "bar"},
        [{"op": "remove", "path": "/baz"}],
        {"foo": "bar"},
    ),
    (  # A.4
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (  # A.5
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (  # A.6
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (  # A.7
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (  # A.8
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2},
        ],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (  # A.10
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (  # A.11
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    (  # A.14
        {"/": 9, "~1": 10},
        [{"op": "test", "path": "/~01", "value": 10}],
        {"/": 9, "~1": 10},
    ),
    (  # A.16
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    (  # copy, and escaped "/" in a key
        {"a": {"b": [1]}, "m": {}},
        [{"op": "copy", "from": "/a", "path": "/m/x~1y"}],
        {"a": {"b": [1]}, "m": {"x/y": {"b": [1]}}},
    ),
    (  # evanphx reads negative indices from the end
        {"l": [1, 2, 3]},
        [{"op": "remove", "path": "/l/-1"}, {"op": "replace", "path": "/l/-2", "value": 0}],
        {"l": [0, 2]},
    ),
    (  # and strconv.Atoi allows a leading zero
        {"l": ["a", "b"]},
        [{"op": "replace", "path": "/l/01", "value": "z"}],
        {"l": ["a", "z"]},
    ),
    (  # whole-document replace
        {"a": 1},
        [{"op": "replace", "path": "", "value": {"b": 2}}],
        {"b": 2},
    ),
    (  # a missing key passes a test for null, as in evanphx
        {"a": 1},
        [{"op": "test", "path": "/nope", "value": None}],
        {"a": 1},
    ),
    (  # a null body decodes as no operations
        {"a": 1},
        None,
        {"a": 1},
    ),
]


@pytest.mark.parametrize(("target", "ops", "expected"), RFC6902)
def test_json_patch_applies(target: Any, ops: Any, expected: Any) -> None:
    before = (copy.deepcopy(target), copy.deepcopy(ops))
    assert json_patch(target, ops) == expected
    assert (target, ops) == before


JSON_PATCH_422 = [
    ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}]),  # A.9
    ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}]),  # A.12
    ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}]),  # A.15
    ({"a": 1}, [{"op": "test", "path": "/a", "value": 1.5}]),
    ({"a": True}, [{"op": "test", "path": "/a", "value": 1}]),
    ({"a": 1}, [{"op": "remove", "path": "/b"}]),
    ({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}]),
    ({"a": 1}, [{"op": "move", "from": "/b", "path": "/c"}]),
    ({"a": 1}, [{"op": "copy", "from": "/b", "path": "/c"}]),
    ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}]),
    ({"l": [1]}, [{"op": "add", "path": "/l/2", "value": 0}]),
    ({"l": [1]}, [{"op": "remove", "path": "/l/1"}]),
    ({"l": [1]}, [{"op": "remove", "path": "/l/-2"}]),
    ({"l": [1]}, [{"op": "replace", "path": "/l/x", "value": 0}]),
    ({"l": [1]}, [{"op": "test", "path": "/l/5", "value": None}]),
    ({"a": 1}, [{"op": "add", "path": "", "value": {}}]),
    ({"a": 1}, [{"op": "replace", "path": "", "value": 3}]),
    ({"a": 1}, [{"op": "frobnicate", "path": "/a"}]),
    ({"a": 1}, [{"path": "/a", "value": 2}]),
    ({"a": 1}, [{"op": "add", "value": 2}]),
    ({"a": 1}, [None]),
]


@pytest.mark.parametrize(("target", "ops"), JSON_PATCH_422)
def test_json_patch_failures_are_generic_422(target: Any, ops: Any) -> None:
    before = copy.deepcopy(target)
    with pytest.raises(ApiError) as caught:
        json_patch(target, ops)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        422,
        "Invalid",
        REJECTED,
    )
    assert target == before


def test_failed_resource_version_test_is_422_and_changes_nothing() -> None:
    obj = {"metadata": {"name": "x", "resourceVersion": "7", "finalizers": ["kopf"]}}
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "6"},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]
    with pytest.raises(ApiError) as caught:
        json_patch(obj, ops)
    assert caught.value.code == 422
    assert obj["metadata"]["finalizers"] == ["kopf"]
    ops[0]["value"] = "7"
    assert json_patch(obj, ops)["metadata"] == {
        "name": "x",
        "resourceVersion": "7",
        "finalizers": [],
    }


JSON_PATCH_400 = [
    (
        {"op": "add", "path": "/a", "value": 1},
        "error decoding patch: json: cannot unmarshal object into Go value of type "
        "[]handlers.jsonPatchOp",
    ),
    (
        "add",
        "error decoding patch: json: cannot unmarshal string into Go value of type "
        "[]handlers.jsonPatchOp",
    ),
    (
        [1],
        "error decoding patch: json: cannot unmarshal number into Go value of type "
        "handlers.jsonPatchOp",
    ),
    (
        [{"op": 1, "path": "/a"}],
        "error decoding patch: json: cannot unmarshal number into Go struct field "
        "jsonPatchOp.op of type string",
    ),
    (
        [{"op": "add", "path": ["a"]}],
        "error decoding patch: json: cannot unmarshal array into Go struct field "
        "jsonPatchOp.path of type string",
    ),
]


@pytest.mark.parametrize(("ops", "message"), JSON_PATCH_400)
def test_json_patch_undecodable_body_is_400(ops: Any, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        json_patch({"a": 1}, ops)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        400,
        "BadRequest",
        message,
    )


def test_json_patch_operation_limit() -> None:
    ops = [{"op": "test", "path": "/a", "value": 1}] * 10001
    with pytest.raises(ApiError) as caught:
        json_patch({"a": 1}, ops)
    assert caught.value.code == 413
    assert caught.value.message.endswith("is 10000, got 10001")


def test_json_patch_values_are_copied_into_the_result() -> None:
    value = {"k": ["v"]}
    ops = [{"op": "add", "path": "/a", "value": value}]
    result = json_patch({}, ops)
    result["a"]["k"].append("w")
    assert value == {"k": ["v"]}


# ---- strategic merge patch ----------------------------------------------------------------


def _pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


POD = _pod(
    containers=[
        {
            "name": "app",
            "image": "app:1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "args": ["--x", "--y"],
        },
        {"name": "side", "image": "side:1"},
    ],
    volumes=[{"name": "data", "emptyDir": {}}],
    tolerations=[{"key": "a", "operator": "Exists"}],
)

SMP = [
    (
        "update one container's image, the other containers stay",
        {"spec": {"containers": [{"name": "side", "image": "side:2"}]}},
        lambda r: [(c["name"], c["image"]) for c in r["spec"]["containers"]],
        [("app", "app:1"), ("side", "side:2")],
    ),
    (
        "a new env var is merged in, ahead of the server-only ones as apimachinery orders it",
        {"spec": {"containers": [{"name": "app", "env": [{"name": "C", "value": "3"}]}]}},
        lambda r: [e["name"] for e in r["spec"]["containers"][0]["env"]],
        ["C", "A", "B"],
    ),
    (
        "an existing env var is updated in place",
        {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "9"}]}]}},
        lambda r: r["spec"]["containers"][0]["env"],
        [{"name": "A", "value": "1"}, {"name": "B", "value": "9"}],
    ),
    (
        "$patch: delete removes a list element by key",
        {"spec": {"containers": [{"name": "app", "env": [{"$patch": "delete", "name": "A"}]}]}},
        lambda r: r["spec"]["containers"][0]["env"],
        [{"name": "B", "value": "2"}],
    ),
    (
        "$patch: replace in a list keeps only the patch's elements",
        {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o:1"}]}},
        lambda r: r["spec"]["containers"],
        [{"name": "only", "image": "o:1"}],
    ),
    (
        "container ports merge on containerPort",
        {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "h"}]}]}},
        lambda r: r["spec"]["containers"][0]["ports"],
        [{"containerPort": 80, "protocol": "TCP", "name": "h"}],
    ),
    (
        "volumeMounts merge on mountPath",
        {
            "spec": {
                "containers": [
                    {"name": "app", "volumeMounts": [{"mountPath": "/data", "readOnly": True}]}
                ]
            }
        },
        lambda r: r["spec"]["containers"][0]["volumeMounts"],
        [{"name": "data", "mountPath": "/data", "readOnly": True}],
    ),
    (
        "atomic lists (args, tolerations) are replaced",
        {
            "spec": {
                "containers": [{"name": "app", "args": ["--z"]}],
                "tolerations": [{"key": "b", "operator": "Exists"}],
            }
        },
        lambda r: (r["spec"]["containers"][0]["args"], r["spec"]["tolerations"]),
        (["--z"], [{"key": "b", "operator": "Exists"}]),
    ),
    (
        "null deletes a key",
        {"spec": {"tolerations": None, "containers": [{"name": "app", "args": None}]}},
        lambda r: ("tolerations" in r["spec"], "args" in r["spec"]["containers"][0]),
        (False, False),
    ),
    (
        "$setElementOrder as kubectl apply sends it places a new container",
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "mid"}, {"name": "side"}],
                "containers": [{"name": "mid", "image": "mid:1"}],
            }
        },
        lambda r: [c["name"] for c in r["spec"]["containers"]],
        ["app", "mid", "side"],
    ),
    (
        "$setElementOrder alone reorders the live list",
        {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "app"}]}},
        lambda r: [c["name"] for c in r["spec"]["containers"]],
        ["side", "app"],
    ),
    (
        "kubectl apply deleting an env var",
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
                "containers": [
                    {
                        "name": "app",
                        "$setElementOrder/env": [{"name": "B"}],
                        "env": [{"$patch": "delete", "name": "A"}],
                    }
                ],
            }
        },
        lambda r: r["spec"]["containers"][0]["env"],
        [{"name": "B", "value": "2"}],
    ),
    (
        "$retainKeys drops the keys it does not list",
        {
            "spec": {
                "volumes": [
                    {
                        "name": "data",
                        "$retainKeys": ["name", "hostPath"],
                        "hostPath": {"path": "/x"},
                    }
                ]
            }
        },
        lambda r: r["spec"]["volumes"],
        [{"name": "data", "hostPath": {"path": "/x"}}],
    ),
    (
        "$patch: replace in a map",
        {"spec": {"nodeSelector": {"$patch": "replace", "zone": "b"}}},
        lambda r: r["spec"]["nodeSelector"],
        {"zone": "b"},
    ),
    (
        "$patch: delete of a map leaves it empty, as apimachinery does",
        {"metadata": {"labels": {"$patch": "delete"}}},
        lambda r: r["metadata"]["labels"],
        {},
    ),
]


@pytest.mark.parametrize(("why", "patch", "pick", "expected"), SMP, ids=[c[0] for c in SMP])
def test_strategic_merge_patch(why: str, patch: dict[str, Any], pick: Any, expected: Any) -> None:
    target = copy.deepcopy(POD)
    target["spec"]["nodeSelector"] = {"zone": "a", "disk": "ssd"}
    target["metadata"]["labels"] = {"app": "x"}
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    result = strategic_merge_patch(target, patch)
    assert pick(result) == expected, why
    assert (target, patch) == before
    assert _no_directives(result)


META = [
    ("finalizers merge as a set", ["a", "b"], {"finalizers": ["b", "c"]}, ["a", "b", "c"]),
    (
        "$deleteFromPrimitiveList removes values",
        ["a", "b", "c"],
        {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]},
        ["a", "c"],
    ),
    (
        "kubectl apply adding a finalizer",
        ["a"],
        {"$setElementOrder/finalizers": ["x", "a"], "finalizers": ["x"]},
        ["x", "a"],
    ),
    (
        "kubectl apply removing a finalizer",
        ["a", "b"],
        {"$setElementOrder/finalizers": ["a"], "$deleteFromPrimitiveList/finalizers": ["b"]},
        ["a"],
    ),
]


@pytest.mark.parametrize(("why", "current", "meta", "expected"), META, ids=[c[0] for c in META])
def test_strategic_merge_patch_finalizers(
    why: str, current: list[str], meta: dict[str, Any], expected: list[str]
) -> None:
    target = {"kind": "ConfigMap", "metadata": {"name": "c", "finalizers": current}}
    result = strategic_merge_patch(target, {"metadata": meta})
    assert result["metadata"]["finalizers"] == expected, why
    assert target["metadata"]["finalizers"] == current


def test_set_element_order_interleaves_unnamed_elements_by_live_position() -> None:
    # normalizeElementOrder: named elements take the directive's order; an unnamed one goes
    # before the first named element that follows it in the live list.
    target = {"kind": "Pod", "spec": {"containers": [{"name": n} for n in "abc"]}}
    patch = {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}}
    result = strategic_merge_patch(target, patch)
    assert [c["name"] for c in result["spec"]["containers"]] == ["b", "c", "a"]


def test_strategic_merge_patch_conditions_merge_by_type() -> None:
    target = {
        "kind": "Pod",
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ]
        },
    }
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Up"}]}}
    assert strategic_merge_patch(target, patch)["status"]["conditions"] == [
        {"type": "Ready", "status": "True", "reason": "Up"},
        {"type": "PodScheduled", "status": "True"},
    ]


def test_strategic_merge_patch_service_ports_merge_on_port() -> None:
    svc = {"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}
    assert strategic_merge_patch(svc, patch)["spec"]["ports"] == [
        {"port": 80, "targetPort": 9090},
        {"port": 443},
    ]
    # Elsewhere `ports` is atomic (here a NetworkPolicy rule's).
    policy = {"kind": "NetworkPolicy", "spec": {"ingress": [{"ports": [{"port": 80}]}]}}
    patch = {"spec": {"ingress": [{"ports": [{"port": 81}]}]}}
    assert strategic_merge_patch(policy, patch)["spec"]["ingress"] == [{"ports": [{"port": 81}]}]


def test_strategic_merge_patch_new_list_without_directives() -> None:
    target = {"kind": "Pod", "spec": {}}
    patch = {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": None}]}]}}
    result = strategic_merge_patch(target, patch)
    assert result["spec"]["containers"] == [{"name": "a", "env": [{"name": "X"}]}]


SMP_ERRORS = [
    (
        [1],
        400,
        "BadRequest",
        "json: cannot unmarshal array into Go value of type map[string]interface {}",
    ),
    (
        {"spec": {"containers": [{"image": "x:1"}]}},
        500,
        "",
        "map: map[image:x:1] does not contain declared merge key: name",
    ),
    (
        {"spec": {"nodeSelector": {"$patch": "frob"}}},
        500,
        "",
        "unknown patch type: frob in map: map[$patch:frob]",
    ),
    (
        {"spec": {"tolerations": [], "$retainKeys": ["containers"]}},
        400,
        "BadRequest",
        "invalid patch format of retainKeys",
    ),
    (
        {"spec": {"$retainKeys": "containers"}},
        400,
        "BadRequest",
        "invalid patch format of retainKeys",
    ),
    (
        {"metadata": {"$deleteFromPrimitiveList": ["a"]}},
        400,
        "BadRequest",
        "invalid patch format of primitive list",
    ),
    (
        {"spec": {"$setElementOrder/containers": "app"}},
        500,
        "",
        "expected a []interface {}, but received a string",
    ),
    (
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"name": "side", "image": "s:2"}],
            }
        },
        500,
        "",
        "The order in patch list:\n[map[image:s:2 name:side]]\n doesn't match "
        "$setElementOrder list:\n[map[name:app]]\n",
    ),
    (
        {"spec": {"containers": [["nested"]]}},
        422,
        "Invalid",
        REJECTED,
    ),
]


@pytest.mark.parametrize(("patch", "code", "reason", "message"), SMP_ERRORS)
def test_strategic_merge_patch_errors(patch: Any, code: int, reason: str, message: str) -> None:
    target = copy.deepcopy(POD)
    with pytest.raises(ApiError) as caught:
        strategic_merge_patch(target, patch)
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        code,
        reason,
        message,
    )
    assert target == POD


def test_strategic_merge_patch_of_custom_resources_is_415() -> None:
    check_strategic_supported(False)
    with pytest.raises(ApiError) as caught:
        check_strategic_supported(True)
    assert caught.value.code == 415
    assert caught.value.reason == "UnsupportedMediaType"
    assert caught.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
