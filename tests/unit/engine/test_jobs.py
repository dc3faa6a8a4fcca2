"""Job manifests of `run` steps (`koos.engine.jobs`): golden files and the Kubernetes schema.

Each case in CASES builds a Job and compares it, as YAML, with `golden/<case>.yaml` next to
this file, then validates it against the official Kubernetes 1.32 schema (strict: unknown
fields fail) with kubernetes-validate. After an intended change of the manifests, rewrite the
golden files and review the diff:

    KOOS_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/engine/test_jobs.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from koos.api.template import Step
from koos.engine.jobs import JobRequest, build_job, job_name, label_value, param_env_name

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("KOOS_UPDATE_GOLDEN") == "1"
K8S_VERSION = "1.32"
CANARY = "hunter2-not-for-manifests"

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
DB_PASSWORD = {"valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}


def request(step: dict[str, Any], **overrides: Any) -> JobRequest:
    fields: dict[str, Any] = {
        "execution": "restart-web-1",
        "namespace": "ops",
        "uid": "6f1d2c3e-0000-4000-8000-000000000001",
        "step": Step.model_validate(step),
        "attempt": 1,
    }
    return JobRequest(**(fields | overrides))


CASES: dict[str, JobRequest] = {
    "script": request(
        {"name": "hello", "run": {"image": "busybox:1.36", "script": 'echo "hi $$ $(date)"'}}
    ),
    "command-args": request(
        {
            "name": "restart",
            "run": {
                "image": "bitnami/kubectl:1.32",
                "command": ["kubectl"],
                "args": ["rollout", "restart", "deployment/$(KOOS_PARAM_DEPLOYMENT)"],
                "workingDir": "/work",
            },
        },
        service_account_name="koos-runner",
        parameters={"deployment": "web"},
        attempt=2,
    ),
    "secret-parameter": request(
        {
            "name": "migrate",
            "run": {
                "image": "postgres:17",
                "script": "set -eu\npsql -c 'select 1'\n",
                "env": [
                    {"name": "PGHOST", "value": "db.ops.svc"},
                    {
                        "name": "PGUSER",
                        "valueFrom": {"secretKeyRef": {"name": "db", "key": "user"}},
                    },
                    {
                        "name": "PGDATABASE",
                        "valueFrom": {"configMapKeyRef": {"name": "db-config", "key": "name"}},
                    },
                ],
            },
        },
        parameters={
            "password": DB_PASSWORD,
            "dryRun": False,
            "batchSize": 500,
            "tables": ["users", "orders"],
            "options": {"verbose": True, "mode": "fast"},
            "note": "costs $$ (dollars)",
        },
        secret_names=frozenset({"password"}),
    ),
    "volumes": request(
        {
            "name": "render",
            "run": {
                "image": "busybox:1.36",
                "script": "cat /etc/app/config.yaml /etc/tls/tls.crt",
                "volumes": [
                    {"name": "config", "mountPath": "/etc/app", "configMap": {"name": "app"}},
                    {"name": "tls", "mountPath": "/etc/tls", "secret": {"secretName": "app-tls"}},
                ],
            },
        }
    ),
    "resources": request(
        {
            "name": "compact",
            "run": {
                "image": "busybox:1.36",
                "script": "true",
                "resources": {
                    "requests": {"memory": "64Mi", "cpu": "100m"},
                    "limits": {"memory": "128Mi"},
                },
            },
        }
    ),
    "long-names": request(
        {"name": "check-every-replica-of-the-deployment", "run": {"image": "busybox:1.36"}},
        execution="nightly-database-maintenance-for-the-payments-cluster-at-29145600",
        attempt=3,
    ),
    "timeout": request(
        {"name": "wait", "timeout": "10m", "run": {"image": "busybox:1.36", "script": "sleep 5"}},
        deadline_seconds=600,
    ),
    "loop-item": request(
        {
            "name": "run-command",
            "loop": {"items": "{{ params.hosts }}", "concurrency": 20},
            "run": {
                "image": "busybox:1.36",
                "script": 'echo "on $INSTANCE_ID"',
                "env": [{"name": "INSTANCE_ID", "value": "i-0a1b $(x)"}],
            },
        },
        index=41,
        item={"id": "i-0a1b $(x)", "zone": "a"},
        attempt=2,
    ),
}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as `|` blocks, so golden files read like templates."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(manifest: dict[str, Any]) -> str:
    return yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


@pytest.mark.parametrize("case", sorted(CASES))
def test_job_matches_its_golden_file(case: str) -> None:
    text = dump(build_job(CASES[case]))
    path = GOLDEN / f"{case}.yaml"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with KOOS_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{path} differs: if intended, KOOS_UPDATE_GOLDEN=1"
    assert yaml.safe_load(text) == build_job(CASES[case])


@pytest.mark.parametrize("case", sorted(CASES))
def test_job_is_valid_against_the_kubernetes_schema(case: str) -> None:
    kubernetes_validate.validate(build_job(CASES[case]), K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_bad_job() -> None:
    manifest = build_job(CASES["script"])
    manifest["spec"]["template"]["spec"]["containers"][0]["env"][0]["valeu"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_names_and_labels_are_valid(case: str) -> None:
    req = CASES[case]
    manifest = build_job(req)
    name = manifest["metadata"]["name"]
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name)
    assert "generateName" not in manifest["metadata"]
    pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == manifest["metadata"]["labels"]
    for key, value in pod_labels.items():
        assert LABEL_KEY.fullmatch(key), key
        assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    assert pod_labels == {
        "koos.io/execution": label_value(req.execution),
        "koos.io/step": label_value(req.step.name),
        "koos.io/attempt": str(req.attempt),
        "app.kubernetes.io/managed-by": "koos",
        **({"koos.io/item": str(req.index)} if req.index is not None else {}),
    }
    (owner,) = manifest["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Execution", req.execution, req.uid)


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_attempt_per_job_under_restricted_security(case: str) -> None:
    req = CASES[case]
    spec = build_job(req)["spec"]
    assert spec["backoffLimit"] == 0
    assert spec.get("activeDeadlineSeconds") == req.deadline_seconds
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    env = [e["name"] for e in container["env"]]
    assert env[:4] == ["KOOS_EXECUTION", "KOOS_STEP", "KOOS_ATTEMPT", "KOOS_OUTPUT"]
    assert {"name": "KOOS_OUTPUT", "value": container["terminationMessagePath"]} in container["env"]


def test_a_secret_parameter_is_only_a_reference() -> None:
    req = CASES["secret-parameter"]
    env = {e["name"]: e for e in build_job(req)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KOOS_PARAM_PASSWORD"] == {"name": "KOOS_PARAM_PASSWORD"} | DB_PASSWORD
    assert env["KOOS_PARAM_DRY_RUN"]["value"] == "false"
    assert env["KOOS_PARAM_OPTIONS"]["value"] == '{"mode":"fast","verbose":true}'
    assert env["KOOS_PARAM_NOTE"]["value"] == "costs $$$$ (dollars)"  # the kubelet halves $$


def test_no_secret_value_reaches_the_manifest() -> None:
    extra = {"valueFrom": DB_PASSWORD["valueFrom"], "value": CANARY}
    manifest = build_job(
        request(
            {"name": "s", "run": {"image": "busybox", "script": "true"}},
            parameters={"password": extra},
            secret_names=frozenset({"password"}),
        )
    )
    assert CANARY not in json.dumps(manifest)


@pytest.mark.parametrize(
    "given",
    [CANARY, {"value": CANARY}, {"valueFrom": {"secretKeyRef": {"name": CANARY}}}],
    ids=["literal", "value", "incomplete-ref"],
)
def test_a_secret_parameter_given_as_a_value_is_refused_without_repeating_it(
    given: Any,
) -> None:
    req = request(
        {"name": "s", "run": {"image": "busybox", "script": "true"}},
        parameters={"password": given},
        secret_names=frozenset({"password"}),
    )
    with pytest.raises(ValueError, match="secret parameter 'password'") as caught:
        build_job(req)
    assert CANARY not in str(caught.value)
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None


def test_the_manifest_is_deterministic() -> None:
    req = CASES["secret-parameter"]
    shuffled = dict(reversed(list(req.parameters.items())))
    other = dataclasses.replace(req, parameters=shuffled)
    assert dump(build_job(req)) == dump(build_job(req)) == dump(build_job(other))


def test_a_script_reaches_the_shell_unexpanded() -> None:
    container = build_job(CASES["script"])["spec"]["template"]["spec"]["containers"][0]
    # the kubelet turns $$ into $ and expands $(VAR); escaped, the script arrives verbatim
    assert container["command"] == ["/bin/sh", "-c", 'echo "hi $$$$ $$(date)"']


@pytest.mark.parametrize(
    ("execution", "step", "attempt", "expected"),
    [
        ("restart-web-1", "approve", 1, "restart-web-1-approve-1"),
        ("a" * 40, "b" * 20, 1, "a" * 40 + "-" + "b" * 20 + "-1"),  # exactly 63
        (
            "nightly-database-maintenance-for-the-payments-cluster-29145600",
            "check",
            1,
            "nightly-database-maintenance-for-the-payments-cluste-304461af05",
        ),
        ("web.v2", "check", 1, "web-v2-check-1-719e2d03e8"),
    ],
)
def test_job_name(execution: str, step: str, attempt: int, expected: str) -> None:
    assert job_name(execution, step, attempt) == expected


def test_long_job_names_stay_unique_and_valid() -> None:
    execution = "x" * 80
    names = {job_name(execution, step, attempt) for step in ("a", "b") for attempt in (1, 2, 10)}
    assert len(names) == 6
    for name in names:
        assert len(name) <= 63 and DNS_LABEL.fullmatch(name)
    assert job_name("web.v2", "check", 1) != job_name("web-v2", "check", 1)
    assert job_name("-" * 70, "s", 1).isalnum()  # nothing readable left: the hash alone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("restart-web-1", "restart-web-1"),
        ("Web_v2.prod", "Web_v2.prod"),
        ("x" * 63, "x" * 63),
        ("x" * 64, "x" * 52 + "-" + "7ce100971f"),
    ],
)
def test_label_value(text: str, expected: str) -> None:
    assert label_value(text) == expected


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [
        ("deployment", "KOOS_PARAM_DEPLOYMENT"),
        ("dryRun", "KOOS_PARAM_DRY_RUN"),
        ("log-level", "KOOS_PARAM_LOG_LEVEL"),
        ("HTTPServer", "KOOS_PARAM_HTTP_SERVER"),
        ("a.b c", "KOOS_PARAM_A_B_C"),
        ("v2", "KOOS_PARAM_V2"),
    ],
)
def test_param_env_name(parameter: str, expected: str) -> None:
    assert param_env_name(parameter) == expected


RUN = {"image": "busybox", "script": "true"}


@pytest.mark.parametrize(
    ("step", "overrides", "message"),
    [
        ({"name": "s", "sleep": {"duration": "1s"}}, {}, "has no `run` action"),
        ({"name": "s", "run": RUN}, {"attempt": 0}, "attempt must be 1 or more"),
        ({"name": "s", "run": RUN}, {"deadline_seconds": 0}, "deadline_seconds must be"),
        ({"name": "s", "run": RUN | {"command": ["sh"]}}, {}, "both `script` and `command`"),
        (
            {"name": "s", "run": RUN},
            {"parameters": {"dryRun": True, "dry-run": False}},
            "KOOS_PARAM_DRY_RUN more than once",
        ),
        (
            {"name": "s", "run": RUN | {"env": [{"name": "KOOS_STEP", "value": "x"}]}},
            {},
            "KOOS_STEP more than once",
        ),
        (
            {
                "name": "s",
                "run": RUN
                | {
                    "env": [
                        {
                            "name": "X",
                            "value": "1",
                            "valueFrom": {"secretKeyRef": {"name": "a", "key": "b"}},
                        }
                    ]
                },
            },
            {},
            "both `value` and `valueFrom`",
        ),
        (
            {"name": "s", "run": RUN | {"env": [{"name": "X", "valueFrom": {}}]}},
            {},
            "exactly one of valueFrom",
        ),
        (
            {"name": "s", "run": RUN | {"volumes": [{"name": "v", "mountPath": "/v"}]}},
            {},
            "exactly one of `configMap` and `secret`",
        ),
        (
            {
                "name": "s",
                "run": RUN
                | {
                    "volumes": [
                        {"name": "v", "mountPath": "/a", "configMap": {"name": "a"}},
                        {"name": "v", "mountPath": "/b", "configMap": {"name": "b"}},
                    ]
                },
            },
            {},
            "names two volumes alike",
        ),
    ],
)
def test_requests_validation_should_have_refused_raise(
    step: dict[str, Any], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_job(request(step, **overrides))
