"""The Execution snapshot that engine tests plan from (`koos.engine.execution.plan`): the same
name, namespace and uid in every test ("demo", "ops"; its Jobs are `demo-<step>-…`), and the
spec, status, Jobs, annotations and signing key each test gives."""

from __future__ import annotations

from koos.api.execution import ExecutionSpec, ExecutionStatus
from koos.api.template import TemplateSpec
from koos.engine.facts import ExecutionSnapshot, JobFacts, TemplateFacts


def execution_snapshot(
    *,
    spec: TemplateSpec | None = None,
    status: ExecutionStatus | None = None,
    jobs: dict[str, JobFacts] | None = None,
    mode: str = "Automatic",
    annotations: dict[str, str] | None = None,
    signing_key: bytes | None = None,
    template_generation: int = 1,
) -> ExecutionSnapshot:
    """`spec` is the Template the run resolves when it has not started yet (status without a
    template); later passes read the template from the status and need none."""
    return ExecutionSnapshot(
        name="demo",
        namespace="ops",
        uid="exe-uid",
        generation=1,
        spec=ExecutionSpec.model_validate({"templateRef": {"name": "tpl"}, "mode": mode}),
        status=status or ExecutionStatus(),
        annotations=annotations or {},
        template=None
        if spec is None
        else TemplateFacts("tpl", "tpl-uid", template_generation, spec),
        jobs=jobs or {},
        signing_key=signing_key,
    )
