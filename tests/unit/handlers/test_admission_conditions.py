"""The matchConditions koos keeps on its Execution webhooks so that the API server does not
call them for the operator's own requests."""

from __future__ import annotations

from koos.handlers.admission import conditions_patch, not_from

USER = 'system:serviceaccount:koos-system:koos"x'  # a quote, to check the literal


def config(*hooks: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "koos.io"}, "webhooks": list(hooks)}


def test_the_condition_is_a_cel_string_comparison_on_the_api_servers_user() -> None:
    [condition] = not_from(USER)
    assert condition == {
        "name": "not-koos-itself",
        "expression": 'request.userInfo.username != "system:serviceaccount:koos-system:koos\\"x"',
    }


def test_only_the_creator_webhooks_get_it_guarded_by_their_names() -> None:
    body = config({"name": "decision.koos.io"}, {"name": "creator.koos.io"})
    assert conditions_patch("mutatingwebhookconfigurations", body, USER) == [
        {"op": "test", "path": "/webhooks/1/name", "value": "creator.koos.io"},
        {"op": "add", "path": "/webhooks/1/matchConditions", "value": not_from(USER)},
    ]
    validating = config({"name": "template.koos.io"}, {"name": "creator-kept.koos.io"})
    assert [
        op["path"] for op in conditions_patch("validatingwebhookconfigurations", validating, USER)
    ] == [
        "/webhooks/1/name",
        "/webhooks/1/matchConditions",
    ]
    # The mutating creator's name in a validating configuration is not ours to change.
    assert conditions_patch("validatingwebhookconfigurations", body, USER) == []


def test_nothing_to_do_once_they_are_there_and_redone_for_another_user() -> None:
    body = config({"name": "creator.koos.io", "matchConditions": not_from(USER)})
    assert conditions_patch("mutatingwebhookconfigurations", body, USER) == []
    assert conditions_patch("mutatingwebhookconfigurations", body, "someone-else") != []
