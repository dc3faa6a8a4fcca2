"""Read the Secret values a step's container could see, so the engine can mask them out of
the text koos copies from its Pod (`koos.engine.masking`).

Read only what is needed, only when it is needed: for a Job a step may settle on
(`engine.steps.outcome_jobs`, which includes the Job of a step whose status write was lost)
that has ended with a message (a log tail or an output), the keys `masking.secret_sources`
names, each Secret once per pass. Values go into `JobFacts.secrets` and nowhere else: never
logged, never in an error. A Secret that cannot be read (gone, or the operator may not `get`
it) withholds the text (`JobFacts.secrets_unread` says why) rather than risk copying a
secret; a transient error fails the pass, which is retried.

The operator needs `get` on Secrets in the namespaces it serves.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from koos.api.execution import ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.facts import JobFacts
from koos.engine.masking import SecretSource, secret_sources
from koos.k8s.client import Kube, KubeError


async def with_secret_values(
    kube: Kube,
    namespace: str,
    status: ExecutionStatus,
    template: TemplateSpec | None,
    outcomes: Mapping[str, str],
    facts: Mapping[str, JobFacts],
    given: Mapping[str, Any] | None = None,
) -> dict[str, JobFacts]:
    """`facts`, with the values to mask added to each ended Job that a step may settle on
    (`outcomes`: Job name -> step name, from `engine.steps.outcome_jobs`) and that has a
    message to copy. `template` and `given` (the Execution's spec parameters) stand for the
    resolved ones while the run has not started yet."""
    out = dict(facts)
    spec = status.template.spec if status.template is not None else template
    parameters = status.parameters if status.template is not None else given
    if spec is None:
        return out
    steps = {s.name: s for s in spec.all_steps()}
    cache: dict[str, dict[str, str] | str] = {}
    for job, step_name in sorted(outcomes.items()):
        fact = facts.get(job)
        step = steps.get(step_name)
        if fact is None or fact.phase == "Active" or not fact.message.strip() or step is None:
            continue
        sources = secret_sources(spec, step, parameters)
        if sources:
            values, unread = await _values(kube, namespace, sources, cache)
            out[job] = replace(fact, secrets=values, secrets_unread=unread)
    return out


async def _values(
    kube: Kube,
    namespace: str,
    sources: tuple[SecretSource, ...],
    cache: dict[str, dict[str, str] | str],
) -> tuple[tuple[str, ...], str]:
    values: list[str] = []
    for name, key in sources:
        if name not in cache:
            cache[name] = await _read(kube, namespace, name)
        data = cache[name]
        if isinstance(data, str):
            return (), data
        values.extend(data.values() if key is None else [data[key]] if key in data else [])
    return tuple(dict.fromkeys(values)), ""


async def _read(kube: Kube, namespace: str, name: str) -> dict[str, str] | str:
    """The Secret's values by key, or why they could not be read."""
    path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(name)}"
    try:
        body = await kube.find(path)
    except KubeError as error:
        if error.transient:
            raise
        return f"koos could not read Secret {name} to mask its values ({error.code} {error.reason})"
    if body is None:
        return f"Secret {name} is gone, so koos cannot mask its values"
    values: dict[str, str] = {}
    for key, encoded in (body.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(str(encoded), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            values[key] = str(encoded)  # binary: only its base64 form can be printed
    for key, text in (body.get("stringData") or {}).items():
        values[key] = str(text)
    return values
