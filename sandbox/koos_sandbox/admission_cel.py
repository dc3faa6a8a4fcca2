"""A webhook's `matchConditions`: CEL expressions a request must meet before the webhook is
called, evaluated as kube-apiserver's `ShouldCallHook` does once the rules and selectors
have matched (admission/plugin/webhook/matchconditions).

- Variables: `object` (null on DELETE), `oldObject` (null on CREATE) and `request`: the
  AdmissionReview's request without the objects (kind, resource, subResource, name,
  namespace, operation, userInfo, dryRun, options, …).
- Any condition false → the webhook is skipped. Otherwise any error → with `failurePolicy:
  Ignore` the webhook is skipped, with `Fail` (the default) the request is refused:
  403 Forbidden, `<resource>.<group> "<name>" is forbidden: <errors>`. All true → called.
- Conditions are compiled once per expression text.

Not emulated (documented choices): the `authorizer` variable (an expression using it fails
to evaluate, so the failure policy decides); the checks kube-apiserver makes when a
configuration is written (at most 64 conditions, unique qualified names, expressions that
compile and return a bool) — here a bad expression is an evaluation error; the runtime cost
budget. Expressions are evaluated by the `cel` library (the Rust `cel` crate), whose error
texts differ from cel-go's.
"""

from __future__ import annotations

import functools
from typing import Any

from koos_sandbox.admission_match import Webhook
from koos_sandbox.admission_review import build_review
from koos_sandbox.errors import aggregate, forbidden
from koos_sandbox.writes import AdmissionRequest

MISSING = ""
try:  # imported with the sandbox, not at its first request (the import takes ~0.2 s)
    import cel
except ImportError as _missing:  # the `sandbox` extra; the operator itself never needs it
    MISSING = f"{_missing}: install koos with the [sandbox] extra"


@functools.lru_cache(maxsize=1024)
def _compiled(expression: str) -> Any:
    """The program of an expression, or the error its compilation raised (the sandbox
    does not start without the library)."""
    try:
        return cel.compile(expression)
    except Exception as error:  # the library raises ValueError, but any is a compile error
        return error


def compile_error(expression: str) -> str | None:
    """Why an expression does not compile, or None when it does."""
    program = _compiled(expression)
    return str(program) if isinstance(program, Exception) else None


def _evaluate(expression: str, variables: dict[str, Any]) -> bool | str:
    """True/False, or the text of the error (compiling, evaluating, or not a bool)."""
    program = _compiled(expression)
    if isinstance(program, Exception):
        return f"compilation failed: {program}"
    try:
        value = program.execute(variables)
    except Exception as error:
        return f"expression '{expression}' resulted in error: {error}"
    if not isinstance(value, bool):
        return f"expression '{expression}' resulted in a {type(value).__name__}, not a bool"
    return value


def conditions_match(hook: Webhook, request: AdmissionRequest) -> bool:
    """Whether the webhook is to be called; raises the 403 a failing-closed error makes."""
    conditions = [c for c in hook.spec.get("matchConditions") or [] if isinstance(c, dict)]
    if not conditions:
        return True
    review = build_review(request, uid="")["request"]
    variables = {
        "object": review.pop("object"),
        "oldObject": review.pop("oldObject"),
        "request": review,
    }
    errors: list[str] = []
    for condition in conditions:
        outcome = _evaluate(str(condition.get("expression", "")), variables)
        if outcome is False:
            return False  # a false condition skips the webhook, whatever else errs
        if isinstance(outcome, str):
            errors.append(outcome)
    if not errors:
        return True
    if hook.ignore_failures:
        return False
    raise forbidden(request.rt.plural, request.name, request.rt.group, aggregate(errors))
