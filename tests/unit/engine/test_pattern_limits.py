"""What validating a Template's patterns may cost (review of issue 10): an RE2 refusal is
cached like a compiled pattern, a Template declares at most MAX_PATTERNS distinct patterns,
and validation lists at most MAX_PROBLEMS problems and stops when its caller says so."""

from __future__ import annotations

from typing import Any

import pytest

from koos.api.template import TemplateSpec
from koos.engine import params, patterns
from koos.engine.params import MAX_PATTERNS
from koos.engine.template import MAX_PROBLEMS, STOPPED, validate_template

# RE2 takes tens of milliseconds to give up on this one (its program is too large).
REFUSED = r"\pL{1,1000}z"
STEP = {"name": "a", "run": {"image": "busybox", "script": "true"}}


def spec_with_patterns(texts: list[str]) -> TemplateSpec:
    parameters = {f"p{i}": {"type": "string", "pattern": text} for i, text in enumerate(texts)}
    return TemplateSpec.model_validate({"parameters": parameters, "steps": [STEP]})


def test_a_refused_pattern_is_compiled_once() -> None:
    patterns._compiled.cache_clear()
    first = patterns.pattern_problem(REFUSED)
    assert first is not None and "RE2" in first
    assert patterns.pattern_problem(REFUSED) == first
    with pytest.raises(patterns.PatternError, match="RE2"):
        patterns.search(REFUSED, "abc")
    info = patterns._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_a_template_repeating_a_refused_pattern_compiles_it_once() -> None:
    patterns._compiled.cache_clear()
    problems = validate_template(spec_with_patterns([REFUSED] * 20))
    assert len(problems) == 20
    assert patterns._compiled.cache_info().misses == 1


def test_a_template_over_the_pattern_cap_is_refused_before_compiling_any(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    monkeypatch.setattr(params, "pattern_problem", lambda text: compiled.append(text))
    texts = [f"^a{i}$" for i in range(MAX_PATTERNS + 1)]
    [problem] = validate_template(spec_with_patterns(texts))
    assert problem.path == "spec.parameters"
    assert f"{MAX_PATTERNS + 1} distinct patterns, over the limit of {MAX_PATTERNS}" in str(problem)
    assert compiled == []
    # At the cap (and with patterns nested in items counted) it is accepted.
    assert validate_template(spec_with_patterns(texts[:MAX_PATTERNS])) == []


def test_patterns_inside_items_count_toward_the_cap() -> None:
    parameters: dict[str, Any] = {
        f"p{i}": {"type": "array", "items": {"type": "string", "pattern": f"^b{i}$"}}
        for i in range(MAX_PATTERNS + 1)
    }
    spec = TemplateSpec.model_validate({"parameters": parameters, "steps": [STEP]})
    [problem] = validate_template(spec)
    assert "over the limit of 256" in str(problem)


def test_validation_stops_collecting_problems_after_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    monkeypatch.setattr(
        params, "pattern_problem", lambda text: compiled.append(text) or "refused by RE2"
    )
    problems = validate_template(spec_with_patterns([f"^c{i}(" for i in range(200)]))
    assert len(problems) == MAX_PROBLEMS + 1
    assert str(problems[-1]) == "spec: …and more"
    # It stopped compiling soon after the cap, not after all 200.
    assert len(compiled) == MAX_PROBLEMS + 1


def test_validation_past_its_deadline_returns_at_the_next_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled: list[str] = []
    monkeypatch.setattr(params, "pattern_problem", lambda text: compiled.append(text))
    checks = 0

    def stop() -> bool:
        nonlocal checks
        checks += 1
        return len(compiled) >= 3  # "time is up" after three parameters

    spec = spec_with_patterns([f"^d{i}$" for i in range(100)])
    problems = validate_template(spec, stop)
    assert len(compiled) == 3
    assert [str(p) for p in problems] == [f"spec: {STOPPED}"]
    assert checks <= 5
