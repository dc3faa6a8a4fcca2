"""Label and field selectors: apimachinery's grammar, matching and error wording."""

from __future__ import annotations

from typing import Any

import pytest

from koos_sandbox.errors import ApiError
from koos_sandbox.selectors import (
    parse_field_selector,
    parse_label_selector,
    selector_from_dict,
)

pytestmark = pytest.mark.sandbox_only(
    reason="unit tests of the sandbox's selector module (no server)"
)

NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
PREFIX_RULE = (
    "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
    "'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)

LABELS = {"app": "web", "tier": "front", "n": "5", "empty": "", "example.com/team": "a"}

# (selector, matches LABELS?)
LABEL_CASES = [
    ("", True),
    ("   ", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("app in (web,db)", True),
    ("app in (db)", False),
    ("missing in (x)", False),
    ("app notin (db, cache)", True),
    ("app notin (web)", False),
    ("missing notin (x)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("n>4", True),
    ("n>5", False),
    ("n<6", True),
    ("n < 1", False),
    ("app>1", False),  # a non-integer label value never compares
    ("missing<9", False),
    ("empty=", True),
    ("empty in ()", True),
    ("empty in (x,)", True),
    ("app in (web,,x)", True),
    ("example.com/team=a", True),
    (" app = web , tier in ( front ) ,\t!missing ", True),
    ("app=web,tier=back", False),
    ("in in (in)", False),  # "in" is a key and a value where it stands as one
]


@pytest.mark.parametrize(("text", "expected"), LABEL_CASES)
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_label_selector_empty_and_none_labels() -> None:
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)
    assert parse_label_selector("in in (in)").matches({"in": "in"})


LABEL_ERRORS = [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("-a=b", f'unable to parse requirement: <nil>: Invalid value: "-a": {NAME_RULE}'),
    ("Ex.com/a", f'unable to parse requirement: <nil>: Invalid value: "Ex.com/a": {PREFIX_RULE}'),
    (
        "/a",
        'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be non-empty',
    ),
    (
        "a" * 64,
        f'unable to parse requirement: <nil>: Invalid value: "{"a" * 64}": '
        "name part must be no more than 63 characters",
    ),
    (
        "a=b-",
        f'unable to parse requirement: values[0][a]: Invalid value: "b-": {VALUE_RULE}',
    ),
    (
        "a>x",
        "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
        "operators, the value must be an integer",
    ),
    (
        "a>-1",
        f'unable to parse requirement: values[0][a]: Invalid value: "-1": {VALUE_RULE}',
    ),
]


@pytest.mark.parametrize(("text", "message"), LABEL_ERRORS)
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector(text)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == message


def test_label_selector_three_part_key() -> None:
    with pytest.raises(ApiError) as caught:
        parse_label_selector("a/b/c")
    assert caught.value.message.startswith(
        'unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must '
    )
    assert caught.value.message.endswith(
        "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
    )


# ---- metav1.LabelSelector -----------------------------------------------------------------

DICT_CASES: list[tuple[Any, dict[str, str] | None, bool]] = [
    (None, {"a": "1"}, True),
    ({}, None, True),
    ({"matchLabels": {}, "matchExpressions": []}, {"a": "1"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    (
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
        {"a": "2"},
        True,
    ),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    (
        {
            "matchLabels": {"a": "1"},
            "matchExpressions": [{"key": "b", "operator": "In", "values": ["x"]}],
        },
        {"a": "1", "b": "y"},
        False,
    ),
]


@pytest.mark.parametrize(("selector", "labels", "expected"), DICT_CASES)
def test_selector_from_dict(selector: Any, labels: dict[str, str] | None, expected: bool) -> None:
    assert selector_from_dict(selector).matches(labels) is expected


DICT_ERRORS = [
    (
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        '"Gt" is not a valid label selector operator',
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't "
        "be empty",
    ),
    (
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        'values: Invalid value: []string{"x"}: values set must be empty for exists and does '
        "not exist",
    ),
    ({"matchLabels": {"-a": "1"}}, f'key: Invalid value: "-a": {NAME_RULE}'),
    (
        {"matchLabels": {"-a": "b-"}},
        f'[key: Invalid value: "-a": {NAME_RULE}, '
        f'values[0][-a]: Invalid value: "b-": {VALUE_RULE}]',
    ),
]


@pytest.mark.parametrize(("selector", "message"), DICT_ERRORS)
def test_selector_from_dict_errors(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        selector_from_dict(selector)
    assert (caught.value.code, caught.value.message) == (400, message)


# ---- field selectors ----------------------------------------------------------------------

POD = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "prod"},
    "spec": {"nodeName": "node-a", "restartPolicy": "Never", "serviceAccountName": "sa"},
    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}]},
}
EVENT = {
    "kind": "Event",
    "metadata": {"name": "e", "namespace": "prod"},
    "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "prod", "uid": "u1"},
    "reason": "Started",
    "type": "Normal",
    "source": {"component": "kubelet"},
    "reportingComponent": "kubelet",
}

FIELD_CASES = [
    ("", "Pod", POD, True),
    ("metadata.name=web-1", "Pod", POD, True),
    ("metadata.name==web-1", "Pod", POD, True),
    ("metadata.name!=web-1", "Pod", POD, False),
    ("metadata.namespace!=kube-system,status.phase=Running", "Pod", POD, True),
    ("spec.nodeName=node-b", "Pod", POD, False),
    ("spec.host=node-a", "Pod", POD, True),  # the old alias of spec.nodeName
    ("spec.restartPolicy=Never,spec.serviceAccountName=sa", "Pod", POD, True),
    ("status.podIP=10.0.0.1", "Pod", POD, True),
    ("status.nominatedNodeName=", "Pod", POD, True),
    ("spec.schedulerName!=", "Pod", POD, False),  # absent reads as ""
    ("involvedObject.name=web-1,involvedObject.kind=Pod", "Event", EVENT, True),
    ("involvedObject.uid=u2", "Event", EVENT, False),
    ("reason=Started,type!=Warning,source=kubelet", "Event", EVENT, True),
    ("reportingComponent=kubelet", "Event", EVENT, True),
    ("type=kubernetes.io/tls", "Secret", {"type": "kubernetes.io/tls"}, True),
    ("status.successful=2", "Job", {"status": {"succeeded": 2}}, True),
    ("status.successful=0", "Job", {"status": {}}, True),
    ("status.phase=Active", "Namespace", {"status": {"phase": "Active"}}, True),
    ("metadata.name=a\\,b", "ConfigMap", {"metadata": {"name": "a,b"}}, True),
    ("metadata.name=a\\=b\\\\", "ConfigMap", {"metadata": {"name": "a=b\\"}}, True),
    ("metadata.namespace=", "ClusterRole", {"metadata": {"name": "r"}}, True),
]


@pytest.mark.parametrize(("text", "kind", "obj", "expected"), FIELD_CASES)
def test_field_selector_matches(text: str, kind: str, obj: dict[str, Any], expected: bool) -> None:
    assert parse_field_selector(text, kind).matches(obj) is expected


def test_field_selector_empty() -> None:
    assert parse_field_selector("", "Pod").empty
    assert not parse_field_selector("metadata.name=x", "Pod").empty


FIELD_ERRORS = [
    ("spec.containers=x", "Pod", "field label not supported: spec.containers"),
    ("metadata.namespace=x", "Node", "field label not supported: metadata.namespace"),
    ("metadata.namespace=x", "Namespace", "field label not supported: metadata.namespace"),
    ("metadata.name = x", "Pod", "field label not supported: metadata.name "),
    (
        "spec.replicas=1",
        "Deployment",
        '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"',
    ),
    ("metadata.name", "Pod", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("metadata.name=a=b", "Pod", "invalid field selector: unescaped character in value: 61"),
    ("metadata.name=a\\x", "Pod", "invalid field selector: invalid escape sequence: \\x"),
    ("metadata.name=a\\", "Pod", "invalid field selector: invalid escape sequence: \\"),
]


@pytest.mark.parametrize(("text", "kind", "message"), FIELD_ERRORS)
def test_field_selector_errors(text: str, kind: str, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector(text, kind)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert caught.value.message == message


def test_field_selector_custom_resources() -> None:
    obj = {"metadata": {"name": "x", "namespace": "n"}}
    assert parse_field_selector("metadata.namespace=n", "Execution", custom=True).matches(obj)
    with pytest.raises(ApiError) as caught:
        parse_field_selector("spec.phase=x", "Execution", custom=True)
    assert caught.value.message == "field label not supported: spec.phase"
    with pytest.raises(ApiError) as caught:
        parse_field_selector("metadata.namespace=n", "Thing", custom=True, namespaced=False)
    assert caught.value.message == "field label not supported: metadata.namespace"
