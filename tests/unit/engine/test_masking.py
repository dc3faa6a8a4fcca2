"""Secrets masked out of the text koos copies from a Pod (issue 10 item 6): the masker itself,
which Secrets a step can see, and the planner's use of both."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from koos.api.execution import ExecutionSpec, ExecutionStatus, StepStatus
from koos.api.template import TemplateSpec
from koos.engine.execution import plan
from koos.engine.facts import ExecutionSnapshot, JobFacts, JobPhase, Plan, TemplateFacts
from koos.engine.masking import MASK, Masker, _base64_at, mask, secret_sources

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "hunter2-Pa55word"


@pytest.mark.parametrize(
    "text",
    [
        f"+ curl -u admin:{SECRET} https://x",
        f"token={SECRET}",
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(f"admin:{SECRET}".encode()).decode(),  # another alignment
        base64.b64encode(f"ab:{SECRET}\n".encode()).decode(),
        base64.urlsafe_b64encode(f"x{SECRET}".encode()).decode(),
        json.dumps({"password": SECRET}),
        SECRET[5:] + " was the end of a longer log line",  # the kubelet kept only the tail
    ],
)
def test_every_common_form_of_a_value_is_masked(text: str) -> None:
    masked = mask(text, [SECRET])
    assert SECRET not in masked and MASK in masked
    assert "Pa55word" not in masked


def test_a_url_encoded_value_is_masked() -> None:
    assert mask("https://u:p%40ss%2Fw0rd%21@host", ["p@ss/w0rd!"]) == f"https://u:{MASK}@host"


def test_base64_forms_are_masked_without_the_plain_value_around() -> None:
    for prefix in ("", "a", "ab", "abc"):
        encoded = base64.b64encode((prefix + SECRET + "!").encode()).decode()
        masked = mask(encoded, [SECRET])
        assert MASK in masked, prefix
        # What is left cannot be decoded back into the secret.
        assert len(masked.replace(MASK, "")) <= 8


def test_each_line_of_a_multi_line_secret_is_masked() -> None:
    lines = ["-----BEGIN KEY-----", "MIIEvQIBADANBgkqhkiG9w0B", "AQEFAASCBKcwggSjAgEAAoIB"]
    key = "\n".join([*lines, "-----END KEY-----", ""])
    log = "loading key\nAQEFAASCBKcwggSjAgEAAoIB\nfailed"
    assert mask(log, [key]) == f"loading key\n{MASK}\nfailed"


def test_short_values_are_not_masked() -> None:
    assert mask("on 1 of abc", ["on", "1", "abc"]) == "on 1 of abc"
    assert mask("abcd", ["abcd"]) == MASK


def test_the_longest_form_wins() -> None:
    assert mask("xx secret-long yy", ["secret", "secret-long"]) == f"xx {MASK} yy"


def test_outputs_are_masked_string_by_string() -> None:
    masker = Masker([SECRET])
    value = {"user": "admin", "pw": SECRET, "nested": [f"a {SECRET}", 3, None], SECRET: True}
    assert masker.value(value) == {
        "user": "admin",
        "pw": MASK,
        "nested": [f"a {MASK}", 3, None],
        MASK: True,
    }


def test_a_number_holding_a_secret_is_masked_in_outputs() -> None:
    masker = Masker(["12345678"])
    value = {"pin": 12345678, "f": 12345678.0, "other": 42, "flag": True}
    assert masker.value(value) == {"pin": MASK, "f": MASK, "other": 42, "flag": True}


def test_no_values_change_nothing() -> None:
    assert mask("anything at all", []) == "anything at all"
    assert not Masker([])
    assert "values" not in repr(JobFacts(name="j", phase="Failed", secrets=(SECRET,)))
    assert SECRET not in repr(JobFacts(name="j", phase="Failed", secrets=(SECRET,)))


def spec_of(**run: Any) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "parameters": {"token": {"secret": True}, "plain": {"default": "x"}},
            "steps": [{"name": "a", "run": {"image": "busybox", "script": "true", **run}}],
        }
    )


def test_secret_sources_are_the_parameters_env_refs_and_volumes() -> None:
    spec = spec_of(
        env=[
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
            {"name": "C", "value": "plain"},
        ],
        volumes=[
            {"name": "tls", "mountPath": "/tls", "secret": {"secretName": "tls"}},
            {"name": "cfg", "mountPath": "/cfg", "configMap": {"name": "cfg"}},
        ],
    )
    parameters = {"token": {"valueFrom": {"secretKeyRef": {"name": "api", "key": "t"}}}}
    assert secret_sources(spec, spec.steps[0], parameters) == (
        ("api", "t"),
        ("db", "pw"),
        ("tls", None),
    )
    assert secret_sources(spec_of(), spec_of().steps[0], {}) == ()


# --- Through the planner -----------------------------------------------------------------


def snapshot(status: ExecutionStatus | None = None, *jobs: JobFacts) -> ExecutionSnapshot:
    params = {"token": {"valueFrom": {"secretKeyRef": {"name": "api", "key": "t"}}}}
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}, "parameters": params}),
        status=status or ExecutionStatus(),
        template=TemplateFacts("tpl", "tpl-uid", 7, spec_of()),
        jobs={job.name: job for job in jobs},
    )


def ended(phase: JobPhase, message: str, **facts: Any) -> Plan:
    first = plan(snapshot(), T0)
    job = JobFacts(name="demo-a-1", phase=phase, created=T0, message=message, **facts)
    return plan(snapshot(first.status, job), T0 + timedelta(seconds=10))


def record(result: Plan) -> StepStatus:
    return next(s for s in result.status.steps or [] if s.name == "a")


def everything(result: Plan) -> str:
    return json.dumps(result.status.model_dump(mode="json")) + repr(result.event)


def test_a_set_x_log_tail_is_masked_in_step_run_and_event() -> None:
    tail = f"+ curl -H 'Authorization: Bearer {SECRET}' https://api\ncurl: (22) 401"
    result = ended("Failed", tail, exit_code=22, secrets=(SECRET,))
    assert SECRET not in everything(result)
    assert record(result).message == (
        f"exit code 22: + curl -H 'Authorization: Bearer {MASK}' https://api\ncurl: (22) 401"
    )
    assert MASK in (result.status.message or "") and result.event is not None
    assert MASK in result.event.message


def test_an_output_holding_a_secret_is_masked() -> None:
    result = ended("Succeeded", json.dumps({"dsn": f"pg://u:{SECRET}@db"}), secrets=(SECRET,))
    assert record(result).outputs == {"dsn": f"pg://u:{MASK}@db"}


def test_an_invalid_output_is_quoted_masked() -> None:
    result = ended("Succeeded", f"password is {SECRET}, not JSON", secrets=(SECRET,))
    assert record(result).reason == "InvalidOutput"
    assert SECRET not in everything(result)


def test_text_whose_secrets_could_not_be_read_is_withheld() -> None:
    why = "koos could not read Secret api to mask its values (403 Forbidden)"
    failed = ended("Failed", f"leak {SECRET}", exit_code=1, secrets_unread=why)
    assert record(failed).message == f"exit code 1: the message is withheld: {why}"
    succeeded = ended("Succeeded", json.dumps({"k": SECRET}), secrets_unread=why)
    assert (record(succeeded).phase, record(succeeded).reason) == ("Failed", "OutputWithheld")
    assert SECRET not in everything(failed) + everything(succeeded)


def test_no_secret_survives_in_random_logs() -> None:
    """Random secrets (letters, digits, punctuation, spaces, newlines, non-ASCII) printed in
    random logs, whole, base64-encoded or cut at the start of the tail: none survives."""
    import random

    alphabet = "abcXYZ019 _-+/=:;$'\"\\\n\té€"
    rng = random.Random(10)
    for _ in range(500):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(4, 40)))
        if any(len(line.strip("\r")) < 4 for line in value.splitlines()) or value != value.strip():
            continue  # short lines are not masked on their own; see test_short_values
        noise = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        encoded = base64.b64encode((noise + value).encode()).decode()
        cut = value[rng.randint(1, len(value) - 4) :] if len(value) > 4 else ""
        log = f"{noise}{value}{noise}\n{encoded}\n"
        masked = mask(cut + log, [value])
        assert value not in masked
        assert not cut or not masked.startswith(cut)
        # The characters of the encoding that depend on the value alone are gone.
        for core in _base64_at(value.encode(), len(noise.encode()) % 3)[:1]:
            assert len(core) < 4 or core not in masked
