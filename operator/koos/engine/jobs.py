"""Job manifests of `run` steps: pure builders, no I/O (DESIGN.md §3).

`build_job(JobRequest)` turns one attempt of a rendered `run` step into a batch/v1 Job
manifest that the k8s layer creates as is. Invariants:

- Deterministic: the same request gives the same manifest, byte for byte once serialised
  (parameters are sorted by name, every other list keeps the template's order), so a Job
  that already exists can be recognised and manifests can be golden-tested.
- Names: the Job is `<execution>-<step>-<attempt>`, or for a loop item
  `<execution>-<step>-<index>-<attempt>` (`job_name`), shortened with a hash when
  that is not a valid DNS label of at most 63 characters; never `generateName`. Label values
  are shortened the same way (`label_value`), so they always pass validation.
- Owned and labelled: an owner reference to the Execution (controller, blockOwnerDeletion)
  and the koos labels on the Job and its Pod template, which is what the operator watches.
- One attempt per Job: `backoffLimit: 0`, `restartPolicy: Never`; koos counts attempts.
  The step timeout is the Job's `activeDeadlineSeconds`.
- Restricted Pod Security by default: non-root (uid/gid 65532, because images such as
  busybox run as root otherwise and runAsNonRoot would refuse them), RuntimeDefault seccomp,
  no privilege escalation, every capability dropped.
- Secrets never in clear: a secret parameter reaches the container only as
  `env.valueFrom.secretKeyRef`; a request that gives one as a literal is refused, and the
  error message does not repeat the value.
- What koos writes is literal: the kubelet expands `$(VAR)` and turns `$$` into `$` in env
  values, command and args, so the `KOOS_*` values and a `script` are escaped (`$` → `$$`)
  and reach the container exactly as given. A step's own `command`, `args` and `env` keep
  the Pod semantics their field descriptions promise.

A request the template validation should have refused (a step without `run`, `script` with
`command`, an env var with both a value and a source, colliding variable names, …) raises
`ValueError` with a sentence that says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from koos.api.common import KeySelector
from koos.api.constants import (
    ANNOTATION_EXECUTION,
    API_VERSION,
    LABEL_ATTEMPT,
    LABEL_EXECUTION,
    LABEL_ITEM,
    LABEL_MANAGED_BY,
    LABEL_STEP,
    MANAGER,
    OUTPUT_ENV,
    OUTPUT_PATH,
    PARAM_ENV_PREFIX,
)
from koos.api.execution import SecretParameter
from koos.api.template import EnvVar, RunAction, Step, Volume

MAX_NAME_LENGTH = 63  # a DNS label, and a label value: Job names end up in Pod labels
HASH_LENGTH = 10
CONTAINER_NAME = "step"
RUN_AS_ID = 65532  # the conventional "nonroot" uid/gid of distroless images

ENV_EXECUTION = "KOOS_EXECUTION"
ENV_STEP = "KOOS_STEP"
ENV_ATTEMPT = "KOOS_ATTEMPT"
ENV_ITEM = "KOOS_ITEM"
ENV_INDEX = "KOOS_INDEX"
RESERVED_ENV = (ENV_EXECUTION, ENV_STEP, ENV_ATTEMPT, ENV_ITEM, ENV_INDEX, OUTPUT_ENV)

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NOT_DNS = re.compile(r"[^-a-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_NOT_LABEL = re.compile(r"[^-A-Za-z0-9_.]")
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def _shorten(text: str, valid: re.Pattern[str], safe: str, edges: str) -> str:
    """`text` if it is valid, else a readable prefix of its `safe` form and a hash of all of
    `text`: distinct inputs keep distinct results even when their prefixes agree."""
    if len(text) <= MAX_NAME_LENGTH and valid.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
    prefix = safe[: MAX_NAME_LENGTH - HASH_LENGTH - 1].strip(edges)
    return f"{prefix}-{digest}" if prefix else digest


def job_name(execution: str, step: str, attempt: int, index: int | None = None) -> str:
    """`<execution>-<step>-<attempt>` (`<execution>-<step>-<index>-<attempt>` for a loop
    item), or, when that is longer than 63 characters or not a DNS label, its first 52
    characters (made DNS-safe) and 10 hex characters of its sha256. (Template validation
    refuses a step named like a loop step's item, `<loop step>-<number>`.)"""
    name = f"{execution}-{step}-{attempt}"
    if index is not None:
        name = f"{execution}-{step}-{index}-{attempt}"
    return _shorten(name, _DNS_LABEL, _NOT_DNS.sub("-", name.lower()), "-")


def label_value(text: str) -> str:
    """`text` if it is a valid label value, else a shortened form with a hash of it (as
    `job_name` does); select children with the same function."""
    return _shorten(text, _LABEL_VALUE, _NOT_LABEL.sub("-", text), "-_.")


def param_env_name(parameter: str) -> str:
    """`KOOS_PARAM_` and the parameter name in upper snake case: `dryRun` → KOOS_PARAM_DRY_RUN,
    `log-level` → KOOS_PARAM_LOG_LEVEL (every character but ASCII letters and digits → `_`)."""
    return PARAM_ENV_PREFIX + _NOT_ALNUM.sub("_", _CAMEL_HUMP.sub("_", parameter)).upper()


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """One attempt of a `run` step, with everything its Job is made of.

    `step.run` is already rendered (no expressions left). `parameters` are the resolved
    values by name; a secret parameter's value is `{"valueFrom": {"secretKeyRef": {"name",
    "key"}}}` and its name is in `secret_names`. `deadline_seconds` comes from the step's
    timeout. A loop item's Job has its `index` (from 0) and `item`.
    """

    execution: str
    namespace: str
    uid: str
    step: Step
    attempt: int
    service_account_name: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()
    deadline_seconds: int | None = None
    index: int | None = None  # of a loop item
    item: Any = None

    def __post_init__(self) -> None:
        if self.attempt < 1:
            raise ValueError(f"attempt must be 1 or more, not {self.attempt}")
        if self.deadline_seconds is not None and self.deadline_seconds < 1:
            raise ValueError(f"deadline_seconds must be 1 or more, not {self.deadline_seconds}")
        if self.step.run is None:
            raise ValueError(f"step {self.step.name!r} has no `run` action: it makes no Job")


def build_job(request: JobRequest) -> dict[str, Any]:
    """The batch/v1 Job of one attempt of a `run` step (see the module docstring)."""
    run = _run_of(request.step)
    labels = {
        LABEL_EXECUTION: label_value(request.execution),
        LABEL_STEP: label_value(request.step.name),
        LABEL_ATTEMPT: str(request.attempt),
        LABEL_MANAGED_BY: MANAGER,
    }
    if request.index is not None:
        labels[LABEL_ITEM] = str(request.index)
    pod_spec: dict[str, Any] = {"restartPolicy": "Never"}
    if request.service_account_name:
        pod_spec["serviceAccountName"] = request.service_account_name
    pod_spec["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_ID,
        "runAsGroup": RUN_AS_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod_spec["containers"] = [_container(request, run)]
    if run.volumes:
        pod_spec["volumes"] = [_volume(v) for v in run.volumes]
        if len({v.name for v in run.volumes}) < len(run.volumes):
            raise ValueError(f"step {request.step.name!r} names two volumes alike")
    job_spec: dict[str, Any] = {"backoffLimit": 0}
    if request.deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = request.deadline_seconds
    # The full Execution name (a label value may be shortened), for whoever looks at a Pod.
    annotations = {ANNOTATION_EXECUTION: request.execution}
    job_spec["template"] = {
        "metadata": {"labels": dict(labels), "annotations": annotations},
        "spec": pod_spec,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(request.execution, request.step.name, request.attempt, request.index),
            "namespace": request.namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Execution",
                    "name": request.execution,
                    "uid": request.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


def _run_of(step: Step) -> RunAction:
    if step.run is None:  # JobRequest refuses it; this keeps the type checker informed
        raise ValueError(f"step {step.name!r} has no `run` action: it makes no Job")
    return step.run


def _literal(value: str) -> str:
    """`value` escaped so the kubelet's `$(VAR)` expansion gives it back unchanged."""
    return value.replace("$", "$$")


def _container(request: JobRequest, run: RunAction) -> dict[str, Any]:
    container: dict[str, Any] = {"name": CONTAINER_NAME, "image": run.image}
    if run.script is not None:
        if run.command is not None:
            raise ValueError(f"step {request.step.name!r} gives both `script` and `command`")
        container["command"] = [run.shell, "-c", _literal(run.script)]
    elif run.command is not None:
        container["command"] = list(run.command)
    if run.args is not None:
        container["args"] = list(run.args)
    if run.working_dir:
        container["workingDir"] = run.working_dir
    container["env"] = _env(request, run)
    if run.resources is not None:
        resources = {
            kind: dict(sorted(amounts.items()))
            for kind, amounts in (
                ("requests", run.resources.requests),
                ("limits", run.resources.limits),
            )
            if amounts
        }
        if resources:
            container["resources"] = resources
    if run.volumes:
        container["volumeMounts"] = [
            {"name": v.name, "mountPath": v.mount_path, "readOnly": True} for v in run.volumes
        ]
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    container["terminationMessagePath"] = OUTPUT_PATH
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def _env(request: JobRequest, run: RunAction) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": ENV_EXECUTION, "value": _literal(request.execution)},
        {"name": ENV_STEP, "value": _literal(request.step.name)},
        {"name": ENV_ATTEMPT, "value": str(request.attempt)},
        {"name": OUTPUT_ENV, "value": OUTPUT_PATH},
    ]
    if request.index is not None:
        item = request.item if isinstance(request.item, str) else _json(request.item)
        env.append({"name": ENV_ITEM, "value": _literal(item)})
        env.append({"name": ENV_INDEX, "value": str(request.index)})
    for name in sorted(request.parameters):
        env.append(_param_env(name, request.parameters[name], name in request.secret_names))
    env.extend(_step_env(request.step.name, var) for var in run.env or [])
    counts = Counter(item["name"] for item in env)
    if clashes := sorted(name for name, count in counts.items() if count > 1):
        raise ValueError(
            f"step {request.step.name!r} defines the environment variable(s) "
            f"{', '.join(clashes)} more than once (KOOS_* names are koos's own; parameters "
            "map to KOOS_PARAM_<UPPER_SNAKE_NAME>)"
        )
    return env


def _param_env(name: str, value: Any, secret: bool) -> dict[str, Any]:
    env_name = param_env_name(name)
    if secret:
        return {"name": env_name, "valueFrom": {"secretKeyRef": _key_ref(_secret_ref(name, value))}}
    text = value if isinstance(value, str) else _json(value)
    return {"name": env_name, "value": _literal(text)}


def _secret_ref(name: str, value: Any) -> KeySelector:
    if isinstance(value, SecretParameter):
        return value.value_from.secret_key_ref
    try:
        return SecretParameter.model_validate(value).value_from.secret_key_ref
    except ValidationError:
        # `from None`: pydantic's error would quote the input, which may be the secret
        raise ValueError(
            f"secret parameter {name!r} must be given as "
            "{valueFrom: {secretKeyRef: {name, key}}}, never as a value"
        ) from None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _key_ref(ref: KeySelector) -> dict[str, str]:
    return {"name": ref.name, "key": ref.key}


def _step_env(step: str, var: EnvVar) -> dict[str, Any]:
    if var.value_from is None:
        return {"name": var.name, "value": var.value or ""}
    if var.value is not None:
        raise ValueError(f"env {var.name!r} of step {step!r} gives both `value` and `valueFrom`")
    secret, config_map = var.value_from.secret_key_ref, var.value_from.config_map_key_ref
    if secret is not None and config_map is None:
        return {"name": var.name, "valueFrom": {"secretKeyRef": _key_ref(secret)}}
    if config_map is not None and secret is None:
        return {"name": var.name, "valueFrom": {"configMapKeyRef": _key_ref(config_map)}}
    raise ValueError(
        f"env {var.name!r} of step {step!r} needs exactly one of "
        "valueFrom.secretKeyRef and valueFrom.configMapKeyRef"
    )


def _volume(volume: Volume) -> dict[str, Any]:
    if volume.config_map is not None and volume.secret is None:
        return {"name": volume.name, "configMap": {"name": volume.config_map.name}}
    if volume.secret is not None and volume.config_map is None:
        return {"name": volume.name, "secret": {"secretName": volume.secret.secret_name}}
    raise ValueError(f"volume {volume.name!r} needs exactly one of `configMap` and `secret`")
