"""The Execution planner: `plan(snapshot, now) -> Plan`, pure and deterministic.

State machine of an Execution (status.phase):

        ┌─────────┐ template or parameters invalid ┌────────┐
        │ Pending │───────────────────────────────▶│ Failed │ (reason InvalidSpec)
        └────┬────┘                                └────────┘
             │ template resolved and snapshotted, parameters valid
             ▼
        ┌─────────┐  main steps settle, then finally steps run  ┌───────────┐
        │ Running │────────────────────────────────────────────▶│ Succeeded │
        └────┬────┘                                             │ Failed    │
             │ koos.io/cancel: running Jobs deleted,            │ Cancelled │
             │ pending steps cancelled, finally steps still run └───────────┘
             ▼
          (Running until the finally steps are done)

        Running ⇄ Waiting: a step waits for a person — an Approval (AwaitingApproval);
        koos.io/continue=<step> (AwaitingContinue: in mode Debug before each step, and at
        a loop's batch boundary with `pause`); in mode FailurePause, a failed step waiting
        for koos.io/retry, koos.io/skip or koos.io/cancel (AwaitingFailureDecision).
        Succeeded | Failed | Cancelled ──koos.io/rerun-from=S──▶ Running (attempt n+1: S and
        the steps after it run again; the last 5 attempts are kept in status.attempts).

Run commands are checked, applied once and recorded as an Event by `koos.engine.command`.

Steps (status.steps[].phase): Pending → Running → Succeeded | Failed | Skipped | Cancelled.
A failed attempt with retries left stays Running with a `retryTime`. A step with
`onError: Abort` that fails stops new main steps from starting (they end Skipped, reason
Aborted); running ones finish. Finally steps start once every main step has settled and
always run. Terminal phases change again only by koos.io/rerun-from (and a step paused by
FailurePause is Running until it is retried or skipped).

An approve step recorded as settled without koos's proof (`approval_proof`), or a template
snapshot or parameters that do not match the seal koos wrote at start, means someone else
wrote the status: the run fails at once (reason StatusTampered) and nothing more runs.

Invariants: the template is resolved once and kept in status (edits to it never change a
running Execution); secret parameter values never enter the status or the plan (only their
references do); status stays bounded (one compact record per step, short messages, a
template of at most `MAX_SPEC_BYTES` and parameters of at most `MAX_PARAMETER_BYTES`).

A run that cannot go on for a reason no input check foresaw — the planner raised, or the
API server refused what it planned — ends Failed with reason InternalError and the cause in
its message (`plan_failure`), rather than being retried forever with no phase.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from koos.api.common import Condition
from koos.api.constants import ANNOTATION_CANCEL, STEP_COMMANDS
from koos.api.execution import (
    TERMINAL_PHASES,
    ExecutionStatus,
    ResolvedTemplate,
    StepStatus,
)
from koos.api.template import TemplateSpec
from koos.engine import approval_proof, expressions, steps
from koos.engine.approval import approval_name
from koos.engine.command import consume, refuse_all
from koos.engine.facts import EventSpec, ExecutionSnapshot, Plan
from koos.engine.params import resolve_parameters
from koos.engine.pause import waiting_for_a_person
from koos.engine.pod_start import NEEDS_A_PERSON
from koos.engine.template import MAX_SPEC_BYTES, validate_template
from koos.engine.timefmt import parse_rfc3339, rfc3339

MESSAGE_LIMIT = 1024
# The resolved parameters are copied into the status, beside the template.
MAX_PARAMETER_BYTES = 128 * 1024

__all__ = ["MAX_PARAMETER_BYTES", "MAX_SPEC_BYTES", "plan", "plan_failure"]


def plan(snapshot: ExecutionSnapshot, now: datetime) -> Plan:
    status = snapshot.status
    consumed = _commands(snapshot)
    command = None
    if any(k in snapshot.annotations for k in STEP_COMMANDS):
        # A status someone else wrote takes no command (a running run is stopped below).
        tampering = None if status.template is None else _tampering(snapshot, status)
        if tampering is None:
            command = consume(snapshot, status, now)
        else:
            command = refuse_all(snapshot, status, tampering)
    if command is not None:
        status = command.status
        snapshot = replace(snapshot, status=status)
    planned = _plan(snapshot, status, now, consumed)
    if command is None:
        return planned
    return replace(
        planned,
        consume_annotations=(*planned.consume_annotations, *command.remove),
        set_annotations=command.annotations,
        command_event=command.event,
        wake_at=now if command.more else planned.wake_at,
    )


def _plan(
    snapshot: ExecutionSnapshot, status: ExecutionStatus, now: datetime, consumed: tuple[str, ...]
) -> Plan:
    if status.phase in TERMINAL_PHASES:
        # Loop items' ended Jobs left by a crash between the last status write and their
        # deletion: the finished run records every item.
        leftover = sorted(
            name
            for name, job in snapshot.jobs.items()
            if job.index is not None
            and job.phase != "Active"
            and not job.foreign
            and not job.deleting
        )
        return Plan(status=status, consume_annotations=consumed, release_jobs=tuple(leftover))
    if status.template is None:
        started = _start(snapshot, now)
        if started.status.phase in TERMINAL_PHASES:
            return replace(started, consume_annotations=consumed)
        status = started.status
        snapshot = replace(snapshot, status=status)
        first_event = started.event
    else:
        first_event = None
    tampering = _tampering(snapshot, status)
    if tampering is not None:
        return _stopped(snapshot, status, now, tampering, consumed)
    cancelled_now = ANNOTATION_CANCEL in consumed and not status.cancel_requested
    if cancelled_now:
        status = status.model_copy(update={"cancel_requested": True})
    progress = steps.advance(snapshot, status, now)
    status = _sealed(snapshot, status, progress.status)
    event = first_event or progress.event
    if first_event is not None and progress.event is not None:
        event = replace(
            first_event, message=_short(f"{first_event.message}; {progress.event.message}")
        )
    if cancelled_now:
        message = "Cancel requested (koos.io/cancel): stopping steps, finally steps still run."
        if progress.event is not None:
            message += f" {progress.event.message}"
        event = EventSpec("Warning", "CancelRequested", _short(message))
    if steps.is_finished(status):
        status, final_event = _finish(snapshot, status, now)
        event = final_event
    status = _summarize(snapshot, status)
    return Plan(
        status=status,
        create_jobs=progress.create_jobs,
        delete_jobs=progress.delete_jobs,
        release_jobs=progress.release_jobs,
        create_approvals=progress.create_approvals,
        cancel_approvals=progress.cancel_approvals,
        event=event,
        consume_annotations=consumed,
        wake_at=progress.wake_at,
    )


def _tampering(snapshot: ExecutionSnapshot, status: ExecutionStatus) -> str | None:
    assert status.template is not None
    # The seal first: the proofs below trust the template's list of approve steps.
    unsealed = approval_proof.unsealed(snapshot.signing_key, snapshot.uid, status)
    if unsealed is not None:
        return unsealed
    spec = status.template.spec
    return approval_proof.tampered(
        snapshot.signing_key, snapshot.uid, spec.all_steps(), status.steps or []
    )


def _sealed(
    snapshot: ExecutionSnapshot, before: ExecutionStatus, after: ExecutionStatus
) -> ExecutionStatus:
    assert after.template is not None
    records = approval_proof.sealed(
        snapshot.signing_key,
        snapshot.uid,
        after.template.spec.all_steps(),
        before.steps or [],
        after.steps or [],
    )
    return after.model_copy(update={"steps": records})


def _stopped(
    snapshot: ExecutionSnapshot,
    status: ExecutionStatus,
    now: datetime,
    message: str,
    consumed: tuple[str, ...],
) -> Plan:
    """A status koos did not write lets nothing more run: its Jobs are deleted, its pending
    Approvals withdrawn, and the run fails with reason StatusTampered."""
    records = status.steps or []
    failed = status.model_copy(
        update={
            "phase": "Failed",
            "completion_time": rfc3339(now),
            "message": _short(message),
            "conditions": _conditions(
                snapshot, now, "False", "StatusTampered", message, status.conditions
            ),
        }
    )
    return Plan(
        status=failed,
        delete_jobs=tuple(
            sorted(n for n, j in snapshot.jobs.items() if j.phase == "Active" and not j.deleting)
        ),
        cancel_approvals=tuple(r.approval for r in records if r.phase == "Running" and r.approval),
        event=EventSpec("Warning", "StatusTampered", _short(message)),
        consume_annotations=consumed,
    )


def _commands(snapshot: ExecutionSnapshot) -> tuple[str, ...]:
    return tuple(k for k in (ANNOTATION_CANCEL,) if k in snapshot.annotations)


def _invalid(snapshot: ExecutionSnapshot, now: datetime, problems: list[str]) -> Plan:
    message = "; ".join(problems)
    status = ExecutionStatus(
        phase="Failed",
        observed_generation=snapshot.generation,
        start_time=rfc3339(now),
        completion_time=rfc3339(now),
        message=_short(message),
        conditions=_conditions(snapshot, now, "False", "InvalidSpec", message),
    )
    return Plan(status=status, event=EventSpec("Warning", "InvalidSpec", _short(message)))


def _start(snapshot: ExecutionSnapshot, now: datetime) -> Plan:
    """Resolve the template and the parameters once; refuse the run if either is bad."""
    if snapshot.spec is None:
        return _invalid(snapshot, now, list(snapshot.spec_problems) or ["spec is invalid"])
    template = snapshot.template
    ref = snapshot.spec.template_ref.name
    if template is None:
        return _invalid(
            snapshot,
            now,
            [
                f'spec.templateRef.name: Template "{ref}" not found in namespace '
                f'"{snapshot.namespace}": create it or fix the name'
            ],
        )
    if template.spec is None:
        return _invalid(
            snapshot, now, [f'Template "{ref}" is invalid: {p}' for p in template.problems]
        )
    problems = [f'Template "{ref}" is invalid: {p}' for p in validate_template(template.spec)]
    if problems:
        return _invalid(snapshot, now, problems)
    clashes = _approval_clashes(snapshot.name, template.spec)
    if clashes:
        return _invalid(snapshot, now, clashes)
    values, param_problems = resolve_parameters(template.spec, snapshot.spec.parameters)
    if param_problems:
        return _invalid(snapshot, now, [str(p) for p in param_problems])
    size = len(json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PARAMETER_BYTES:
        return _invalid(
            snapshot,
            now,
            [
                f"spec.parameters: the parameters are {size // 1024} KiB, over the limit of "
                f"{MAX_PARAMETER_BYTES // 1024} KiB: the run keeps a copy in its status; pass "
                "large data through a ConfigMap or Secret"
            ],
        )
    digest = approval_proof.template_hash(template.spec)
    resolved = ResolvedTemplate(
        name=template.name,
        uid=template.uid,
        generation=template.generation,
        hash=digest,
        spec=template.spec,
    )
    status = ExecutionStatus(
        phase="Running",
        observed_generation=snapshot.generation,
        start_time=rfc3339(now),
        template=resolved,
        parameters=values,
        steps=[StepStatus(name=s.name, phase="Pending") for s in template.spec.all_steps()],
        conditions=_conditions(snapshot, now, "Unknown", "Running", "The run has started."),
        attempt=1,
    )
    if snapshot.signing_key is not None:
        seal = approval_proof.run_seal(snapshot.signing_key, snapshot.uid, resolved, values)
        status = status.model_copy(update={"seal": seal})
    message = f"Started a run of template {ref} ({len(status.steps or [])} steps)"
    return Plan(status=status, event=EventSpec("Normal", "Started", message))


def _approval_clashes(execution: str, spec: TemplateSpec) -> list[str]:
    """Approve steps whose Approvals would share a name (names are cut to 253 characters)."""
    owners: dict[str, str] = {}
    problems: list[str] = []
    for step in spec.all_steps():
        if step.approve is None:
            continue
        name = approval_name(execution, step.name)
        if name in owners:
            problems.append(
                f"steps {owners[name]} and {step.name} would both ask for Approval {name} "
                "(Approval names are the Execution's and the step's, cut to 253 characters): "
                "give the Execution a shorter name"
            )
        owners.setdefault(name, step.name)
    return problems


def plan_failure(snapshot: ExecutionSnapshot, now: datetime, cause: str) -> Plan:
    """The run ended Failed (reason InternalError) because it could not go on: the planner
    raised, or the API server refused what was planned. Its live Jobs are deleted and its
    pending Approvals withdrawn, so nothing it started runs on unwatched."""
    status = snapshot.status
    message = (
        f"The run stopped: {cause}. This is a bug in koos or an input it should have refused; "
        "the operator's log has the details."
    )
    records = status.steps or []
    ended = [
        s.model_copy(
            update={
                "phase": "Failed",
                "reason": "InternalError",
                "retry_time": None,
                "completion_time": rfc3339(now),
                "message": "Stopped with the run.",
            }
        )
        if s.phase in ("Pending", "Running")
        else s
        for s in records
    ]
    failed = status.model_copy(
        update={
            "phase": "Failed",
            "observed_generation": snapshot.generation,
            "start_time": status.start_time or rfc3339(now),
            "completion_time": rfc3339(now),
            "steps": ended or None,
            "progress": f"{len(ended)}/{len(ended)}" if ended else None,
            "message": _short(message),
            "conditions": _conditions(
                snapshot, now, "False", "InternalError", message, status.conditions
            ),
        }
    )
    live = [s.approval for s in records if s.phase == "Running" and s.approval]
    jobs = sorted(n for n, j in snapshot.jobs.items() if j.phase == "Active" and not j.deleting)
    return Plan(
        status=failed,
        delete_jobs=tuple(jobs),
        cancel_approvals=tuple(live),
        event=EventSpec("Warning", "InternalError", _short(message)),
        consume_annotations=_commands(snapshot),
    )


def _finish(
    snapshot: ExecutionSnapshot, status: ExecutionStatus, now: datetime
) -> tuple[ExecutionStatus, EventSpec]:
    failure = steps.failure(status)
    outputs, notes = _render_outputs(snapshot, status)
    if status.cancel_requested:
        phase, reason, kind = "Cancelled", "Cancelled", "Warning"
        message = "The run was cancelled (koos.io/cancel); finally steps ran."
    elif failure is not None:
        phase, kind = "Failed", "Warning"
        reason = failure.reason if failure.reason in ("TimedOut", "Rejected") else "Failed"
        message = f"Step {failure.name} failed: {failure.message or failure.reason}"
    else:
        phase, reason, kind = "Succeeded", "Succeeded", "Normal"
        message = "All steps finished."
    if notes:
        message = f"{message} {' '.join(notes)}"
    updated = status.model_copy(
        update={
            "phase": phase,
            "completion_time": rfc3339(now),
            "outputs": outputs or None,
            "message": _short(message),
            "conditions": _conditions(
                snapshot,
                now,
                "True" if phase == "Succeeded" else "False",
                reason,
                message,
                status.conditions,
            ),
        }
    )
    return updated, EventSpec(kind, phase, _short(message))  # type: ignore[arg-type]


def _render_outputs(
    snapshot: ExecutionSnapshot, status: ExecutionStatus
) -> tuple[dict[str, object], list[str]]:
    assert status.template is not None
    wanted = status.template.spec.outputs or {}
    context = steps.context(snapshot, status)
    outputs: dict[str, object] = {}
    notes: list[str] = []
    for name, text in sorted(wanted.items()):
        try:
            outputs[name] = expressions.render(text, context)
        except expressions.ExpressionError as error:
            notes.append(f"Output {name} was not set: {error}.")
    return outputs, notes


def _summarize(snapshot: ExecutionSnapshot, status: ExecutionStatus) -> ExecutionStatus:
    records = status.steps or []
    done = sum(1 for s in records if s.phase not in ("Pending", "Running"))
    update: dict[str, object] = {
        "progress": f"{done}/{len(records)}",
        "observed_generation": snapshot.generation,
    }
    if status.phase in ("Running", "Waiting"):
        running = [_running(s) for s in records if s.phase == "Running"]
        approvals = [s.approval for s in records if s.phase == "Running" and s.approval]
        text = f"Running {', '.join(running)}." if running else "Waiting for the next step."
        reason = "Running"
        # A step waiting for a person (a failure decision, an approval, continue) makes the
        # run Waiting; the message says what to type for each, the most pressing first.
        asks = waiting_for_a_person(snapshot.name, records, approvals)
        if asks:
            reason = asks[0][0]
            text = " ".join(sentence for _, sentence in asks)
        # A Pod that cannot start without a person (koos.engine.pod_start) shows at once.
        blocked = [s for s in records if s.phase == "Running" and s.reason in NEEDS_A_PERSON]
        if blocked:
            text += "".join(f" Step {s.name} is {s.message}" for s in blocked)
            reason = reason if asks else blocked[0].reason or reason
        if status.cancel_requested:
            text, reason = "Cancelling: " + text, "Cancelling"
        update["phase"] = "Waiting" if asks and not status.cancel_requested else "Running"
        update["message"] = _short(text)
        update["conditions"] = _conditions(
            snapshot, _transition_time(status), "Unknown", reason, text, status.conditions
        )
    return status.model_copy(update=update)


def _running(record: StepStatus) -> str:
    """A running step's name, with its items' progress for a loop step."""
    loop = record.loop
    if loop is None:
        return record.name
    return f"{record.name} ({loop.succeeded + loop.failed}/{loop.total} items)"


def _transition_time(status: ExecutionStatus) -> datetime:
    for condition in status.conditions or []:
        if condition.type == "Succeeded":
            return parse_rfc3339(condition.last_transition_time)
    return parse_rfc3339(status.start_time or "1970-01-01T00:00:00Z")


def _conditions(
    snapshot: ExecutionSnapshot,
    now: datetime,
    value: str,
    reason: str,
    message: str,
    previous: list[Condition] | None = None,
) -> list[Condition]:
    """Succeeded, and Ready mirroring it; lastTransitionTime moves only when status flips."""
    out = []
    for kind in ("Succeeded", "Ready"):
        old = next((c for c in previous or [] if c.type == kind), None)
        changed = old is None or old.status != value
        out.append(
            Condition(
                type=kind,
                status=value,  # type: ignore[arg-type]
                observed_generation=snapshot.generation,
                last_transition_time=rfc3339(now) if changed else old.last_transition_time,  # type: ignore[union-attr]
                reason=reason,
                message=_short(message),
            )
        )
    return out


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
