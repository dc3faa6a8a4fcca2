"""Templates: validate on every change and report it in the `Ready` condition.

Ready=False with reason InvalidSpec lists one problem per line with its field path; the
status is written only when it changes (observedGeneration, step count, condition).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from koos.api.common import Condition
from koos.api.constants import GROUP, VERSION
from koos.api.template import TemplateSpec, TemplateStatus
from koos.engine.template import problems_from_pydantic, validate_template
from koos.engine.timefmt import rfc3339
from koos.k8s.apply import merge_diff
from koos.k8s.client import Kube, KubeError, custom_path

log = logging.getLogger("koos.template")


def template_status(
    spec_body: dict[str, Any], generation: int, previous: TemplateStatus | None, now: datetime
) -> TemplateStatus:
    """Pure: the status a Template should have."""
    steps = None
    try:
        spec = TemplateSpec.model_validate(spec_body)
        problems = [str(p) for p in validate_template(spec)]
        steps = len(spec.all_steps())
    except ValidationError as error:
        problems = [str(p) for p in problems_from_pydantic(error)]
    if problems:
        value, reason, message = "False", "InvalidSpec", "\n".join(problems)
    else:
        value, reason, message = "True", "Valid", "The template is valid."
    old = next(
        (c for c in (previous.conditions if previous else None) or [] if c.type == "Ready"), None
    )
    since = old.last_transition_time if old is not None and old.status == value else rfc3339(now)
    ready = Condition(
        type="Ready",
        status=value,  # type: ignore[arg-type]
        observed_generation=generation,
        last_transition_time=since,
        reason=reason,
        message=message,
    )
    return TemplateStatus(observed_generation=generation, step_count=steps, conditions=[ready])


def register(registry: kopf.OperatorRegistry, kube: Kube) -> None:
    @kopf.on.event(GROUP, VERSION, "templates", id="koos-template", registry=registry)
    async def template_changed(
        type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        if type == "DELETED" or namespace is None:
            return
        try:
            previous = TemplateStatus.model_validate(dict(body.get("status") or {}))
        except ValidationError:
            previous = None
        generation = int(body.get("metadata", {}).get("generation", 1))
        status = template_status(
            dict(body.get("spec") or {}), generation, previous, datetime.now(UTC)
        )
        old = previous.model_dump(mode="json", exclude_none=True) if previous else {}
        diff = merge_diff(old, status.model_dump(mode="json", exclude_none=True))
        if diff is None:
            return
        try:
            await kube.merge_patch(
                custom_path("templates", namespace, name, "status"), {"status": diff}
            )
        except KubeError as error:
            if error.code != 404:
                raise
        ready = (status.conditions or [])[0]
        log.info("Validated Template template=%s/%s ready=%s", namespace, name, ready.status)
