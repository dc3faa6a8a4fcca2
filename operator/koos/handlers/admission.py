"""Admission webhooks other than approval decisions, and how they are served.

All koos webhooks are persistent: their configurations stay when the operator stops, so
with `failurePolicy: Fail` nothing slips past them while it is down (uninstalling koos
removes them).

- Execution CREATE and UPDATE: run commands checked and their sender stamped
  (`koos.handlers.command`).
- Execution CREATE: stamp `koos.io/created-by` with the caller the API server names (the
  self-approval rule relies on it); a stamp the user supplies is refused, and so is any
  later change to it.
- Schedule CREATE: stamp `koos.io/created-by` the same way (a supplied one is refused; the
  Schedule webhook refuses any change to it): the runs a Schedule creates carry its creator
  as theirs, so she cannot approve them.
- `executions/status` UPDATE: refused to everyone but the operator (the status says which
  steps passed); a matchCondition spares the API server the call for the operator's writes.
- Template CREATE/UPDATE: refuse a template the engine finds invalid, one problem per line,
  or one that names a ServiceAccount its author may not use (`handlers.service_account`).
- The Execution webhooks and the guards of what only koos writes (Execution and Approval
  status, Approval creation) change nothing for some of the operator's own requests: the
  runs it creates and stamps itself, its updates, its status writes and its Approvals.
  Their configurations carry `matchConditions` that spare the API server those calls, so a
  Schedule's fire, a step's status write or an Approval costs no webhook round trip. kopf
  writes the configurations without them; a watch puts them back whenever they are
  missing, and until then the webhooks are simply called.

The operator serves the webhooks itself (kopf's server) and registers URL-based
configurations named `koos.io` with exactly the rules these handlers need
(`failurePolicy: Fail`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets as random
from typing import Any

import kopf

from koos.api.constants import ANNOTATION_CREATED_BY, GROUP, VERSION
from koos.engine.command import sender_annotation
from koos.handlers.command import check_commands
from koos.handlers.service_account import check_service_account_use
from koos.handlers.validation import run_bounded, schedule_problems, template_problems
from koos.k8s.client import JSON_PATCH, Kube, KubeError

log = logging.getLogger("koos.admission")


def register(registry: kopf.OperatorRegistry, operator_user: str, kube: Kube | None = None) -> None:
    @kopf.on.mutate(
        GROUP,
        VERSION,
        "executions",
        operations=["CREATE"],
        id="creator",
        registry=registry,
        persistent=True,
    )
    async def stamp_creator(body: Any, userinfo: Any, patch: kopf.Patch, **_: Any) -> None:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        caller = str((userinfo or {}).get("username", ""))
        if ANNOTATION_CREATED_BY in annotations and caller != operator_user:
            raise kopf.AdmissionError(
                f"{ANNOTATION_CREATED_BY} is set by koos from the API server's record of who "
                "created the Execution: remove it from your manifest",
                code=403,
            )
        if ANNOTATION_CREATED_BY not in annotations:
            patch.metadata.annotations[ANNOTATION_CREATED_BY] = caller

    @kopf.on.mutate(
        GROUP,
        VERSION,
        "executions",
        operations=["CREATE", "UPDATE"],
        id="commands",
        registry=registry,
        persistent=True,
    )
    async def check_and_stamp_commands(
        body: Any, userinfo: Any, patch: kopf.Patch, **kwargs: Any
    ) -> None:
        caller = str((userinfo or {}).get("username", ""))
        if caller == operator_user:
            return  # it removes the commands it consumed
        problem, sent = check_commands(kwargs.get("old"), body)
        if problem is not None:
            raise kopf.AdmissionError(problem, code=422)
        for key in sent:
            patch.metadata.annotations[sender_annotation(key)] = caller

    @kopf.on.validate(
        GROUP,
        VERSION,
        "executions",
        operations=["UPDATE"],
        id="creator-kept",
        registry=registry,
        persistent=True,
    )
    async def keep_creator(userinfo: Any, **kwargs: Any) -> None:
        old, new = kwargs.get("old"), kwargs.get("new")
        before = ((old or {}).get("metadata") or {}).get("annotations") or {}
        after = ((new or {}).get("metadata") or {}).get("annotations") or {}
        caller = str((userinfo or {}).get("username", ""))
        if before.get(ANNOTATION_CREATED_BY) != after.get(ANNOTATION_CREATED_BY) and (
            caller != operator_user
        ):
            raise kopf.AdmissionError(
                f"{ANNOTATION_CREATED_BY} records who created the Execution and cannot change",
                code=403,
            )

    @kopf.on.validate(
        GROUP,
        VERSION,
        "executions",
        subresource="status",
        operations=["UPDATE"],
        id="execution-status",
        registry=registry,
        persistent=True,
    )
    async def only_koos_writes_status(name: str, userinfo: Any, **_: Any) -> None:
        # The status is the run's memory (which steps passed): written by koos alone.
        if str((userinfo or {}).get("username", "")) != operator_user:
            raise kopf.AdmissionError(
                f"the status of execution {name} is written by koos only: cancel with "
                f"kubectl annotate execution {name} koos.io/cancel=true",
                code=403,
            )

    @kopf.on.mutate(
        GROUP,
        VERSION,
        "schedules",
        operations=["CREATE"],
        id="schedule-creator",
        registry=registry,
        persistent=True,
    )
    async def stamp_schedule_creator(body: Any, userinfo: Any, patch: kopf.Patch, **_: Any) -> None:
        # The runs of a Schedule carry its creator as theirs: she may not approve them.
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        if ANNOTATION_CREATED_BY in annotations:
            raise kopf.AdmissionError(
                f"{ANNOTATION_CREATED_BY} is set by koos from the API server's record of who "
                "created the Schedule: remove it from your manifest",
                code=403,
            )
        patch.metadata.annotations[ANNOTATION_CREATED_BY] = str(
            (userinfo or {}).get("username", "")
        )

    @kopf.on.validate(
        GROUP,
        VERSION,
        "templates",
        operations=["CREATE", "UPDATE"],
        id="template",
        registry=registry,
        persistent=True,
    )
    async def validate(
        spec: Any, userinfo: Any, namespace: str | None, body: Any, **kwargs: Any
    ) -> None:
        # Off the event loop and bounded in time: see koos.handlers.validation.
        problems = await run_bounded(template_problems, dict(spec), what="template")
        if problems:
            raise kopf.AdmissionError("the template is invalid:\n" + "\n".join(problems))
        if kube is not None:  # who may run as the template's ServiceAccount (issue 10 item 9)
            where = namespace or (body.get("metadata") or {}).get("namespace") or ""
            await check_service_account_use(kube, where, spec, kwargs.get("old"), userinfo)


ADMISSION_GROUP, ADMISSION_VERSION = "admissionregistration.k8s.io", "v1"


def _literal(text: str) -> str:
    """A CEL string literal (JSON's escapes are CEL's; characters beyond the BMP are written
    as they are, since CEL refuses JSON's surrogate pairs)."""
    return json.dumps(text, ensure_ascii=False)


def own_requests_skipped(plural: str, hook: str, operator_user: str) -> list[dict[str, str]] | None:
    """The matchConditions of a koos webhook that spare the API server its calls for the
    operator's own requests, exactly where its handler would do nothing (None: none).

    kopf names the webhooks `<handler id>.<configuration>`."""
    me = f"request.userInfo.username != {_literal(operator_user)}"
    if (plural, hook) == ("mutatingwebhookconfigurations", f"creator.{GROUP}"):
        # Only the runs the operator stamped itself: anything else it creates is stamped here.
        stamped = (
            "!has(object.metadata.annotations) || "
            f"!({_literal(ANNOTATION_CREATED_BY)} in object.metadata.annotations)"
        )
        return [{"name": "not-stamped-by-koos", "expression": f"{me} || {stamped}"}]
    if (plural, hook) in (
        # The operator removes the commands it consumed: nothing to check.
        ("mutatingwebhookconfigurations", f"commands.{GROUP}"),
        ("validatingwebhookconfigurations", f"creator-kept.{GROUP}"),
        # The status webhooks refuse everyone but the operator, which writes Execution status
        # on every step: its own writes must cost no webhook call.
        ("validatingwebhookconfigurations", f"execution-status.{GROUP}"),
        ("validatingwebhookconfigurations", f"approval-status.{GROUP}"),
        ("validatingwebhookconfigurations", f"approval-created.{GROUP}"),
    ):
        return [{"name": "not-koos-itself", "expression": me}]
    return None


def conditions_patch(plural: str, body: Any, operator_user: str) -> list[dict[str, Any]]:
    """The JSON patch that adds the missing matchConditions to a koos configuration (each
    guarded by a test of the webhook's name: kopf may rewrite the list meanwhile)."""
    patch: list[dict[str, Any]] = []
    for index, hook in enumerate(body.get("webhooks") or []):
        name = str(hook.get("name", ""))
        wanted = own_requests_skipped(plural, name, operator_user)
        if wanted is not None and hook.get("matchConditions") != wanted:
            patch.append({"op": "test", "path": f"/webhooks/{index}/name", "value": name})
            patch.append(
                {"op": "add", "path": f"/webhooks/{index}/matchConditions", "value": wanted}
            )
    return patch


CONDITION_RETRIES = (0.5, 1, 2, 4, 8, 16, 30)  # seconds between attempts


def register_own_requests_skipped(
    registry: kopf.OperatorRegistry, kube: Kube, operator_user: str
) -> None:
    for plural in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):

        @kopf.on.event(
            ADMISSION_GROUP,
            ADMISSION_VERSION,
            plural,
            when=lambda name, **_: name == GROUP,
            id=f"koos-{plural}",
            registry=registry,
        )
        async def keep_conditions(
            type: str | None, body: kopf.Body, name: str, resource: kopf.Resource, **_: Any
        ) -> None:
            if type == "DELETED":
                return
            patch = conditions_patch(resource.plural, body, operator_user)
            path = f"/apis/{ADMISSION_GROUP}/{ADMISSION_VERSION}/{resource.plural}/{name}"
            for delay in (*CONDITION_RETRIES, None):
                if not patch:
                    return
                try:
                    await kube.request("PATCH", path, body=patch, content_type=JSON_PATCH)
                    return
                except KubeError as error:
                    # 404/409/422: the list changed meanwhile (its event comes next and is
                    # handled then), or the API server refuses the conditions. Either way,
                    # and after the last retry, the webhooks are called for the operator's
                    # requests too, which is only slower.
                    if error.code in (404, 409, 422) or delay is None:
                        log.warning(
                            "Webhook conditions not added config=%s/%s: %s",
                            resource.plural,
                            name,
                            error,
                        )
                        return
                await asyncio.sleep(delay)
                patch = conditions_patch(
                    resource.plural, await kube.find(path) or {}, operator_user
                )


def register_schedule_validation(registry: kopf.OperatorRegistry, allow_seconds: bool) -> None:
    @kopf.on.validate(
        GROUP,
        VERSION,
        "schedules",
        operations=["CREATE", "UPDATE"],
        id="schedule",
        registry=registry,
        persistent=True,
    )
    async def validate_schedule(spec: Any, userinfo: Any, **kwargs: Any) -> None:
        old, new = kwargs.get("old"), kwargs.get("new")
        if old is not None and created_by(old) != created_by(new):
            raise kopf.AdmissionError(
                f"{ANNOTATION_CREATED_BY} records who created the Schedule (its runs count as "
                "hers) and cannot change",
                code=403,
            )
        # A templateRef to nothing is not refused: the Template may come later (GitOps
        # applies in any order); the Schedule then says so in its Ready condition.
        problems = await run_bounded(schedule_problems, dict(spec), allow_seconds, what="schedule")
        if problems:
            raise kopf.AdmissionError("the schedule is invalid:\n" + "\n".join(problems))


def created_by(body: Any) -> str | None:
    annotations = ((body or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get(ANNOTATION_CREATED_BY)


async def whoami(kube: Kube) -> str:
    """The operator's own user name, as the API server knows it."""
    review = await kube.create(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    return str(((review.get("status") or {}).get("userInfo") or {}).get("username", ""))


async def signing_key(kube: Kube, namespace: str, name: str) -> bytes:
    """The key that signs recorded decisions, kept in a Secret (made on first start)."""
    path = f"/api/v1/namespaces/{namespace}/secrets"
    try:
        secret = await kube.get(f"{path}/{name}")
    except KubeError as error:
        if error.code != 404:
            raise
        key = random.token_bytes(32)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "data": {"key": base64.b64encode(key).decode()},
        }
        try:
            await kube.create(path, body)
            log.info("Created the approval signing key secret=%s/%s", namespace, name)
            return key
        except KubeError as conflict:
            if conflict.code != 409:
                raise
            secret = await kube.get(f"{path}/{name}")
    return base64.b64decode((secret.get("data") or {})["key"])
