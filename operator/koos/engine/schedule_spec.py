"""A Schedule's spec beyond its schema: the checks that name the field to fix
(`validate_schedule`), and the Execution one fire creates from `executionTemplate`
(`build_execution`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from koos.api.constants import (
    ANNOTATION_SCHEDULED_TIME,
    API_VERSION,
    GROUP,
    LABEL_MANAGED_BY,
    LABEL_SCHEDULE,
    MANAGER,
)
from koos.api.schedule import ScheduleSpec
from koos.engine.cron import timing_problems
from koos.engine.jobs import label_value
from koos.engine.problem import Problem
from koos.engine.timefmt import rfc3339

__all__ = ["build_execution", "validate_schedule"]

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY = re.compile(rf"([a-z0-9]([-a-z0-9.]{{0,251}}[a-z0-9])?/)?{_NAME}")
_VALUE = re.compile(rf"({_NAME})?")


def validate_schedule(spec: ScheduleSpec, *, allow_seconds: bool = False) -> list[Problem]:
    """Problems of a parsed spec, each with the field path to fix (bounds the model checks
    when it parses, such as non-negative history limits, are checked again)."""
    problems = timing_problems(spec, allow_seconds=allow_seconds)
    for field, value in (
        ("successfulExecutionsHistoryLimit", spec.successful_executions_history_limit),
        ("failedExecutionsHistoryLimit", spec.failed_executions_history_limit),
        ("maxCatchUp", spec.max_catch_up),
    ):
        if value < 0:
            problems.append(Problem(f"spec.{field}", "must be 0 or more"))
    meta = spec.execution_template.metadata
    for kind, entries in (
        ("labels", meta and meta.labels),
        ("annotations", meta and meta.annotations),
    ):
        for key, text in (entries or {}).items():
            path = f"spec.executionTemplate.metadata.{kind}[{key}]"
            if key.startswith(f"{GROUP}/") or key == LABEL_MANAGED_BY:
                problems.append(Problem(path, f"{key} is set by koos; remove it"))
            elif len(key) > 317 or not _KEY.fullmatch(key):
                problems.append(Problem(path, "is not a valid key: [prefix/]name, name ≤ 63"))
            elif kind == "labels" and not _VALUE.fullmatch(text):
                problems.append(Problem(path, f"{text!r} is not a valid label value (≤ 63)"))
    return problems


def build_execution(
    *, schedule: str, namespace: str, uid: str, spec: ScheduleSpec, name: str, at: datetime
) -> dict[str, Any]:
    """The Execution of the fire at `at`, labelled with and owned by its Schedule."""
    meta = spec.execution_template.metadata
    labels = {**((meta and meta.labels) or {})}
    labels.update({LABEL_SCHEDULE: label_value(schedule), LABEL_MANAGED_BY: MANAGER})
    annotations = {**((meta and meta.annotations) or {}), ANNOTATION_SCHEDULED_TIME: rfc3339(at)}
    owner = {
        "apiVersion": API_VERSION,
        "kind": "Schedule",
        "name": schedule,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "Execution",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": spec.execution_template.spec.model_dump(
            mode="json", by_alias=True, exclude_none=True
        ),
    }
