"""Schedules: gather (the Schedule, its runs from an index, whether its Template exists) →
`engine.schedule.plan_schedule(…, now)` → apply (create runs, cancel for Replace, delete
beyond the history limits, Events, status) → wake at the next fire.

Runs are named from the Schedule and the fire's time, so a restart or a second look never
creates one twice: a create that meets 409 is the same fire, already done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from koos.api.constants import (
    ANNOTATION_CANCEL,
    ANNOTATION_CREATED_BY,
    ANNOTATION_SCHEDULED_TIME,
    GROUP,
    LABEL_SCHEDULE,
    VERSION,
)
from koos.api.execution import TERMINAL_PHASES
from koos.api.schedule import ScheduleSpec, ScheduleStatus
from koos.engine import schedule as cron
from koos.engine.template import problems_from_pydantic
from koos.engine.timefmt import parse_rfc3339
from koos.handlers import metrics
from koos.handlers.cache import LatestBodies
from koos.handlers.queue import WorkQueue, event_version
from koos.k8s.apply import merge_diff, post_object_event, resource_version
from koos.k8s.client import Kube, KubeError, custom_path

log = logging.getLogger("koos.schedule")


def compact_run(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return {
        "name": meta.get("name"),
        "phase": status.get("phase"),
        "scheduledTime": (meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME),
        "completionTime": status.get("completionTime"),
        "cancel": bool(status.get("cancelRequested"))
        or ANNOTATION_CANCEL in (meta.get("annotations") or {}),
    }


def run_facts(run: Mapping[str, Any]) -> cron.RunFacts:
    def when(text: Any) -> datetime | None:
        return parse_rfc3339(text) if text else None

    return cron.RunFacts(
        name=str(run["name"]),
        phase=run.get("phase"),
        scheduled_time=when(run.get("scheduledTime")),
        completion_time=when(run.get("completionTime")),
        cancel_requested=bool(run.get("cancel")),
    )


def template_of(body: Mapping[str, Any]) -> str | None:
    spec = (((body.get("spec") or {}).get("executionTemplate") or {}).get("spec")) or {}
    return (spec.get("templateRef") or {}).get("name")


def schedule_owner(body: Mapping[str, Any]) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "Schedule" and str(ref.get("apiVersion", "")).startswith(GROUP):
            return str(ref.get("name"))
    return None


@dataclass
class ScheduleController:
    kube: Kube
    allow_seconds: bool = False
    # Who the API server says the operator is: the creator its runs record (stamped here, so
    # the creator webhook need not be called for them).
    creator: str | None = None
    runs: Mapping[Any, Any] = field(default_factory=dict)  # kopf index: (ns, schedule) → runs
    templates: Mapping[Any, Any] | None = None  # kopf index: (ns, template) → present
    queue: WorkQueue = field(init=False)
    bodies: LatestBodies = field(init=False)

    def __post_init__(self) -> None:
        # Many fires fall due at once (every Schedule at midnight): their reconciles are
        # mostly waiting on requests, so they overlap well. More at once than this only makes
        # each create wait longer behind the others in the API server (128 put the first
        # run 0.13-0.25 s after the fire in the sandbox, 32 put it 0.04-0.10 s after).
        self.queue = WorkQueue(self.reconcile, workers=64)
        self.bodies = LatestBodies(keep=lambda _: True)

    async def reconcile(self, key: Any) -> datetime | None:
        namespace, name = str(key[0]), str(key[1])
        body = self.bodies.fresh(key) or await self.kube.find(
            custom_path("schedules", namespace, name)
        )
        if body is None:
            self.queue.forget(key)
            self.bodies.forget(key)
            return None
        meta = body.get("metadata") or {}
        spec: ScheduleSpec | None
        try:
            spec = ScheduleSpec.model_validate(body.get("spec") or {})
            problems: list[str] = []
        except ValidationError as error:
            spec, problems = None, [str(p) for p in problems_from_pydantic(error)]
        try:
            status = ScheduleStatus.model_validate(body.get("status") or {})
        except ValidationError:
            status = ScheduleStatus()
        template_exists = spec is not None and await self._template_exists(
            namespace, spec.execution_template.spec.template_ref.name
        )
        now = datetime.now(UTC)
        plan = cron.plan_schedule(
            name=name,
            namespace=namespace,
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation", 1)),
            created=parse_rfc3339(meta.get("creationTimestamp") or now.isoformat()),
            spec=spec,
            spec_problems=problems,
            status=status,
            runs=[run_facts(r) for r in self.runs.get((namespace, name), ())],
            template_exists=template_exists,
            now=now,
            allow_seconds=self.allow_seconds,
        )
        try:
            written = await self._apply(namespace, name, meta, status, plan)
        except Exception:
            self.bodies.distrust(key)  # the status write may have landed, its version unknown
            raise
        self.queue.wrote(key, written)
        self.bodies.wrote(key, written)
        return plan.wake_at

    def using_template(self, namespace: str | None, template: str) -> list[Any]:
        """The Schedules (as last seen on the watch) whose runs use this Template."""
        return [
            key
            for key, body in self.bodies.items()
            if (body.get("metadata") or {}).get("namespace") == namespace
            and template_of(body) == template
        ]

    async def _template_exists(self, namespace: str, template: str) -> bool:
        if self.templates is not None:  # kopf's index of Templates: no request per fire
            return (namespace, template) in self.templates
        return await self.kube.find(custom_path("templates", namespace, template)) is not None

    async def _apply(
        self,
        namespace: str,
        name: str,
        meta: Mapping[str, Any],
        status: ScheduleStatus,
        plan: cron.SchedulePlan,
    ) -> tuple[str, ...]:
        """Carry out the plan; returns the resourceVersion its status write made, if any."""
        # A run counts as created by whoever created the Schedule (stamped at its admission),
        # so she cannot approve it; a Schedule from before that stamp falls back to the
        # operator. Stamped here, the run needs no creator webhook call.
        requester = (meta.get("annotations") or {}).get(ANNOTATION_CREATED_BY) or self.creator
        for manifest in plan.create:
            if requester:
                manifest["metadata"]["annotations"][ANNOTATION_CREATED_BY] = requester
            try:
                await self.kube.create(custom_path("executions", namespace), manifest)
                metrics.SCHEDULE_FIRES.inc()
                scheduled = manifest["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME]
                lag = (datetime.now(UTC) - parse_rfc3339(scheduled)).total_seconds()
                metrics.SCHEDULE_LAG_SECONDS.observe(max(lag, 0.0))
                log.info(
                    "Created Execution execution=%s schedule=%s/%s",
                    manifest["metadata"]["name"],
                    namespace,
                    name,
                )
            except KubeError as error:
                if error.code != 409:  # 409: this fire's run exists already
                    raise
        if plan.create:
            # Fires first, bookkeeping after: when many Schedules fall due at once, the
            # status writes wait until every waiting fire has created its run. The run's
            # name makes a second look safe if the operator stops in between.
            await self.queue.let_waiting_go_first()
        for run in plan.cancel:
            await self._patch_run(
                namespace, run, {"metadata": {"annotations": {ANNOTATION_CANCEL: "true"}}}
            )
        for run in plan.delete:
            try:
                await self.kube.delete(custom_path("executions", namespace, run))
            except KubeError as error:
                if error.code != 404:
                    raise
        old = status.model_dump(mode="json", exclude_none=True)
        diff = merge_diff(old, plan.status.model_dump(mode="json", exclude_none=True))
        written: tuple[str, ...] = ()
        if diff is not None:
            try:
                patched = await self.kube.merge_patch(
                    custom_path("schedules", namespace, name, "status"),
                    {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": diff},
                )
            except KubeError as error:
                if error.code != 409:
                    raise
                # The Schedule changed since it was read (more likely after waiting for the
                # other fires): plan again from the new one, read anew (the watch may not
                # have brought it yet); its Events come with that plan.
                self.bodies.distrust((namespace, name))
                self.queue.add((namespace, name))
                return ()
            written = (resource_version(patched),)
        for event in plan.events:
            await post_object_event(
                self.kube,
                namespace,
                "Schedule",
                name,
                event.type,
                event.reason,
                event.message,
                str(meta.get("uid", "")),
            )
        return written

    async def _patch_run(self, namespace: str, run: str, body: dict[str, Any]) -> None:
        try:
            await self.kube.merge_patch(custom_path("executions", namespace, run), body)
        except KubeError as error:
            if error.code != 404:
                raise


def register(registry: kopf.OperatorRegistry, controller: ScheduleController) -> None:
    @kopf.index(
        GROUP,
        VERSION,
        "executions",
        labels={LABEL_SCHEDULE: kopf.PRESENT},
        id="runs_by_schedule",
        registry=registry,
    )
    async def runs_by_schedule(body: kopf.Body, namespace: str | None, **_: Any) -> Any:
        owner = schedule_owner(body)
        return {(namespace, owner): compact_run(body)} if owner else None

    @kopf.index(GROUP, VERSION, "templates", id="templates_present", registry=registry)
    async def templates_present(namespace: str | None, name: str, **_: Any) -> Any:
        return {(namespace, name): True}

    @kopf.on.event(GROUP, VERSION, "schedules", id="koos-schedule", registry=registry)
    async def schedule_changed(
        type: str | None, body: kopf.Body, namespace: str | None, name: str, **kwargs: Any
    ) -> None:
        controller.runs = kwargs["runs_by_schedule"]
        controller.templates = kwargs["templates_present"]
        controller.bodies.seen((namespace, name), type, body)
        controller.queue.add((namespace, name), version=event_version(type, body))

    @kopf.on.event(
        GROUP,
        VERSION,
        "executions",
        labels={LABEL_SCHEDULE: kopf.PRESENT},
        id="koos-schedule-run",
        registry=registry,
    )
    async def run_changed(
        type: str | None, body: kopf.Body, namespace: str | None, **_: Any
    ) -> None:
        # The Schedule decides on its runs' ends (active, Forbid and Replace, history,
        # lastSuccessfulTime) and cancels; their creation and progress change nothing.
        run = compact_run(body)
        owner = schedule_owner(body)
        if owner and (type == "DELETED" or run["phase"] in TERMINAL_PHASES or run["cancel"]):
            controller.queue.add((namespace, owner))

    @kopf.on.event(GROUP, VERSION, "templates", id="koos-schedule-template", registry=registry)
    async def template_changed(
        type: str | None, namespace: str | None, name: str, **_: Any
    ) -> None:
        # A Schedule asks only whether its Template exists: a change to one (its own status
        # write among them) decides nothing.
        if type == "MODIFIED":
            return
        for key in controller.using_template(namespace, name):
            controller.queue.add(key)
