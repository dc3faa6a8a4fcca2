"""Secret values masked out of what koos copies from a Pod, as CI systems mask their logs.

A failing step's log tail (the termination message under `FallbackToLogsOnError`) becomes
the step's message, the Execution's message and an Event; a step's output becomes its
`outputs`. A script that prints a secret (`set -x`, a verbose client) would put it there.
So before koos copies any of that text, each value a step can see through koos is replaced by
`***`:

- which values: those of the template's secret parameters (the key each references), of the
  step's `env[].valueFrom.secretKeyRef` (that key), and of every key of the Secrets its
  `volumes` mount (`secret_sources` names them; the k8s layer reads them, only when a Job
  ended with text to copy, and hands them over in `JobFacts.secrets`);
- which forms (`variants`): the value as is, each of its lines, its base64 encodings (at
  the three byte alignments, standard and URL-safe, as GitHub Actions does), its JSON string
  escape, its URL encoding, and — since the kubelet keeps only the tail of a log — any end of
  it (at least `MIN_LENGTH` characters) that opens the text;
- values and lines shorter than `MIN_LENGTH` (4) characters are not masked: masking "1" or
  "on" would blank out every message while hiding nothing.

Outputs are masked too, string by string (keys and values, after JSON parsing): an output is
written to status, which more people read than the Secret. A value of which only a part is
a secret keeps the rest.

Invariants: pure; `mask(text, ())` is `text`; the result never contains a masked form of a
value of at least `MIN_LENGTH` characters; nothing here logs or keeps a value.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from koos.api.template import Step, TemplateSpec

MASK = "***"
MIN_LENGTH = 4

SecretSource = tuple[str, str | None]  # (Secret name, key); key None: every key


def secret_sources(
    spec: TemplateSpec, step: Step, parameters: Mapping[str, Any] | None
) -> tuple[SecretSource, ...]:
    """The Secret keys whose values the step's container can see through koos, in order."""
    found: list[SecretSource] = []
    for name, parameter in sorted(spec.parameters.items()):
        if not parameter.secret:
            continue
        reference = ((parameters or {}).get(name) or {}).get("valueFrom", {})
        selector = reference.get("secretKeyRef") or {}
        if selector.get("name") and selector.get("key"):
            found.append((str(selector["name"]), str(selector["key"])))
    run = step.run
    if run is not None:
        for var in run.env or []:
            ref = var.value_from.secret_key_ref if var.value_from is not None else None
            if ref is not None:
                found.append((ref.name, ref.key))
        for volume in run.volumes or []:
            if volume.secret is not None:
                found.append((volume.secret.secret_name, None))
    return tuple(dict.fromkeys(found))


def variants(value: str) -> set[str]:
    """Every form of `value` that is masked (see the module docstring)."""
    forms: set[str] = set()
    if len(value) < MIN_LENGTH:
        return forms
    forms.add(value)
    forms.update(line.strip("\r") for line in value.splitlines())
    raw = value.encode()
    forms.add(base64.b64encode(raw).decode())  # alone, with its padding
    forms.add(base64.urlsafe_b64encode(raw).decode())
    for offset in range(3):
        forms.update(_base64_at(raw, offset))
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    forms.add(json.dumps(value)[1:-1])
    forms.add(quote(value, safe=""))
    return {form for form in forms if len(form) >= MIN_LENGTH}


def _base64_at(raw: bytes, offset: int) -> list[str]:
    """`raw` base64-encoded as if it started `offset` bytes into a longer text: the characters
    that depend on `raw` alone (the first ones also hold the bytes before it, the last one the
    bytes after it)."""
    out = []
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(b"\0" * offset + raw).decode().rstrip("=")
        start = (0, 2, 3)[offset]
        end = len(text) - (1 if (offset + len(raw)) % 3 else 0)
        out.append(text[start:end])
    return out


class Masker:
    """Masks the forms of a set of values; built once per Job, used on each text of it."""

    def __init__(self, values: Iterable[str]) -> None:
        forms: set[str] = set()
        for value in values:
            forms |= variants(value)
        # Longest first: a value wins over the lines it is made of.
        ordered = sorted(forms, key=lambda f: (-len(f), f))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._forms = ordered

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        cut = self._cut_value_length(text)
        if cut:
            text = MASK + text[cut:]
        return self._pattern.sub(MASK, text)

    def _cut_value_length(self, text: str) -> int:
        """The length of the longest end of a form (shorter than the form, at least
        `MIN_LENGTH`) that `text` starts with: the kubelet keeps the end of a log, so a value
        may have lost its beginning."""
        longest = 0
        head = text[:MIN_LENGTH]
        if len(head) < MIN_LENGTH:
            return 0
        for form in self._forms:
            start = form.find(head, 1)
            while start != -1:
                size = len(form) - start
                if size <= len(text) and form.startswith(text[:size], start):
                    longest = max(longest, size)
                    break  # the first start gives this form's longest end
                start = form.find(head, start + 1)
        return longest

    def value(self, value: Any) -> Any:
        """`value` (parsed JSON) with every string in it masked, keys included; a number whose
        JSON form holds a secret (a PIN, a numeric token) becomes the string "***"."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            written = json.dumps(value)
            return value if self.text(written) == written else MASK
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        return value


def mask(text: str, values: Iterable[str]) -> str:
    return Masker(values).text(text)
