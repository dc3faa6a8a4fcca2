"""The admission check of run commands on Executions (`koos.io/continue`, `retry`, `skip`,
`rerun-from`): a request that adds or changes one is refused with the reason when it cannot
apply to the run as it is now (`koos.engine.command.command_problem`), and the caller the API
server names is stamped beside it (`koos.io/<command>-by`) for the Event that records it.

- A command on CREATE is refused: commands act on a run under way or finished.
- The stamps and `koos.io/commands-consumed` are koos's: nobody else may set or change them.
- The operator's own requests (it removes consumed commands) are not checked; a
  matchCondition spares the API server the call for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from koos.api.constants import ANNOTATION_COMMANDS_CONSUMED, STEP_COMMANDS
from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.engine.command import command_problem, sender_annotation

KOOS_OWNED = (ANNOTATION_COMMANDS_CONSUMED, *(sender_annotation(c) for c in STEP_COMMANDS))


def _annotations(body: Any) -> Mapping[str, str]:
    return ((body or {}).get("metadata") or {}).get("annotations") or {}


def check_commands(old: Any, new: Any) -> tuple[str | None, list[str]]:
    """Why the request must be refused (None: allowed), and the commands to stamp."""
    before, after = _annotations(old), _annotations(new)
    for key in KOOS_OWNED:
        if before.get(key) != after.get(key):
            return f"{key} is written by koos only: remove it from your request", []
    sent = [k for k in STEP_COMMANDS if k in after and after.get(k) != before.get(k)]
    if not sent:
        return None, []
    if old is None:
        return (
            f"{sent[0]}: commands act on a run under way or finished; create the Execution "
            "first, then annotate it"
        ), []
    try:
        spec = ExecutionSpec.model_validate((new or {}).get("spec") or {})
        status = ExecutionStatus.model_validate((new or {}).get("status") or {})
    except ValidationError:
        return None, sent  # the operator refuses it with a Warning Event, saying why
    for key in sent:
        problem = command_problem(
            key, str(after[key]), spec.mode, status, bool(status.cancel_requested)
        )
        if problem is not None:
            return problem, []
    return None, sent
