"""The matchConditions koos keeps on its Execution webhooks so that the API server does not
call them for the operator's own requests, where their handlers would do nothing."""

from __future__ import annotations

import cel
import pytest

from koos.handlers.admission import conditions_patch, own_requests_skipped

OP = 'system:serviceaccount:koos-system:koos"\\😀'  # a quote, a backslash, beyond the BMP
MUTATING, VALIDATING = "mutatingwebhookconfigurations", "validatingwebhookconfigurations"


def config(*hooks: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "koos.io"}, "webhooks": list(hooks)}


def calls(plural: str, hook: str, user: str, annotations: dict[str, str] | None) -> bool:
    """Whether the API server calls the webhook, by the conditions' CEL."""
    meta: dict[str, object] = {"name": "run"}
    if annotations is not None:
        meta["annotations"] = annotations
    variables = {"request": {"userInfo": {"username": user}}, "object": {"metadata": meta}}
    conditions = own_requests_skipped(plural, hook, OP) or []
    return all(cel.compile(c["expression"]).execute(variables) for c in conditions)


@pytest.mark.parametrize(
    ("user", "annotations", "called"),
    [
        (OP, {"koos.io/created-by": OP}, False),  # a run the operator stamped itself
        (OP, {"team": "sre"}, True),  # anything else it creates is stamped by the webhook
        (OP, None, True),
        ("alice", {"koos.io/created-by": "alice"}, True),  # refused there: not hers to set
        ("alice", None, True),
    ],
)
def test_the_creator_webhook_is_skipped_only_for_runs_the_operator_stamped(
    user: str, annotations: dict[str, str] | None, called: bool
) -> None:
    assert calls(MUTATING, "creator.koos.io", user, annotations) is called


def test_the_creator_kept_webhook_is_skipped_for_every_update_of_the_operator() -> None:
    assert not calls(VALIDATING, "creator-kept.koos.io", OP, None)
    assert calls(VALIDATING, "creator-kept.koos.io", "alice", None)


def test_only_the_creator_webhooks_get_them_guarded_by_their_names() -> None:
    body = config({"name": "decision.koos.io"}, {"name": "creator.koos.io"})
    assert conditions_patch(MUTATING, body, OP) == [
        {"op": "test", "path": "/webhooks/1/name", "value": "creator.koos.io"},
        {
            "op": "add",
            "path": "/webhooks/1/matchConditions",
            "value": own_requests_skipped(MUTATING, "creator.koos.io", OP),
        },
    ]
    validating = config({"name": "template.koos.io"}, {"name": "creator-kept.koos.io"})
    assert [op["path"] for op in conditions_patch(VALIDATING, validating, OP)] == [
        "/webhooks/1/name",
        "/webhooks/1/matchConditions",
    ]
    # The mutating creator's name in a validating configuration is not ours to change.
    assert conditions_patch(VALIDATING, body, OP) == []


def test_nothing_to_do_once_they_are_there_and_redone_for_another_user() -> None:
    wanted = own_requests_skipped(MUTATING, "creator.koos.io", OP)
    body = config({"name": "creator.koos.io", "matchConditions": wanted})
    assert conditions_patch(MUTATING, body, OP) == []
    assert conditions_patch(MUTATING, body, "someone-else") != []
