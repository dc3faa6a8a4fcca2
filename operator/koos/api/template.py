"""The Template resource: a reusable runbook of parameters, steps and outputs.

These models are the single source of truth for the Template CRD's schema (`make crds`).
Only shape is checked here; the meaning (unique names, references, cycles, expressions) is
checked by `koos.engine.template`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from koos.api.approval import ApproveAction
from koos.api.common import Condition, KeySelector, KoosModel

ParameterType = Literal["string", "integer", "number", "boolean", "array", "object"]


class Parameter(KoosModel):
    """One input of a runbook, described with a JSON-Schema subset."""

    type: ParameterType = Field(default="string", description="JSON type of the value.")
    description: str | None = Field(default=None, description="What the parameter is for.")
    default: Any = Field(
        default=None,
        description="Value used when an Execution does not give one. A parameter without a "
        "default is required.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    enum: list[Any] | None = Field(
        default=None,
        description="The only values allowed.",
        json_schema_extra={"items": {"x-kubernetes-preserve-unknown-fields": True}},
    )
    pattern: str | None = Field(
        default=None, description="A regular expression a string value must match."
    )
    minimum: float | None = Field(default=None, description="Smallest allowed number.")
    maximum: float | None = Field(default=None, description="Largest allowed number.")
    min_length: int | None = Field(default=None, ge=0, description="Shortest allowed string.")
    max_length: int | None = Field(default=None, ge=0, description="Longest allowed string.")
    items: dict[str, Any] | None = Field(
        default=None,
        description="JSON-Schema of the items of an array value.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    secret: bool = Field(
        default=False,
        description="The value is a secret: an Execution must give it as valueFrom.secretKeyRef, "
        "and it reaches containers only through a secretKeyRef environment variable.",
    )


class EnvVarSource(KoosModel):
    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(
        default=None, description="A key of a ConfigMap."
    )


class EnvVar(KoosModel):
    """An environment variable of a step's container. Values may use expressions."""

    name: str = Field(description="Name of the variable.")
    value: str | None = Field(default=None, description="Value; `{{ … }}` expressions allowed.")
    value_from: EnvVarSource | None = Field(
        default=None, description="Take the value from a Secret or ConfigMap key."
    )


class ResourceRequirements(KoosModel):
    requests: dict[str, str] | None = Field(
        default=None, description="Minimum compute resources, e.g. {cpu: 100m, memory: 64Mi}."
    )
    limits: dict[str, str] | None = Field(default=None, description="Maximum compute resources.")


class ConfigMapVolume(KoosModel):
    name: str = Field(description="Name of the ConfigMap.")


class SecretVolume(KoosModel):
    secret_name: str = Field(description="Name of the Secret.")


class Volume(KoosModel):
    """A ConfigMap or Secret mounted into the step's container."""

    name: str = Field(description="Name of the volume, unique within the step.")
    mount_path: str = Field(description="Where to mount it in the container.")
    config_map: ConfigMapVolume | None = Field(default=None, description="Mount a ConfigMap.")
    secret: SecretVolume | None = Field(default=None, description="Mount a Secret.")


class RunAction(KoosModel):
    """Run a container as a Kubernetes Job. Give `script` or `command` (not both)."""

    image: str = Field(description="Container image.")
    command: list[str] | None = Field(default=None, description="Entrypoint, as in a Pod.")
    args: list[str] | None = Field(default=None, description="Arguments to the entrypoint.")
    script: str | None = Field(
        default=None,
        description="A shell script run with `shell`. Pass parameters as environment "
        "variables (KOOS_PARAM_<NAME>), never as `{{ params.x }}` text.",
    )
    shell: str = Field(default="/bin/sh", description="The shell that runs `script`.")
    env: list[EnvVar] | None = Field(default=None, description="Environment variables.")
    working_dir: str | None = Field(default=None, description="Working directory.")
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of the container."
    )
    volumes: list[Volume] | None = Field(
        default=None, description="ConfigMaps and Secrets to mount."
    )


class SleepAction(KoosModel):
    duration: str = Field(description="How long to wait, e.g. 30s, 5m, 1h30m.")


class RetryPolicy(KoosModel):
    limit: int = Field(default=0, ge=0, le=100, description="Retries after the first attempt.")
    backoff: str = Field(default="10s", description="Wait before the first retry.")
    factor: float = Field(
        default=2.0, ge=1, le=100, description="Multiplier of the wait per retry (1 to 100)."
    )
    max_backoff: str = Field(default="10m", description="Longest wait between attempts.")


class Loop(KoosModel):
    """Run the step once per item, with rate control (`koos.engine.loop`)."""

    items: list[Any] | str = Field(
        description="The items: a list, or an expression that renders to one (commonly an "
        "earlier step's output). At most 10,000. Inside the step, expressions read `item` and "
        "`index`; containers get KOOS_ITEM (JSON when not a string) and KOOS_INDEX.",
    )
    concurrency: int | str = Field(
        default=1,
        description="Items in flight at most (1 to 500): a number or an expression. Items "
        "start in list order.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    max_errors: int | str = Field(
        default=0,
        description='Failed items tolerated: a count, a percentage of the items ("10%"), '
        "or an expression. Once more fail, no new item starts and the step fails "
        "(TooManyErrors) when the items in flight have finished.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    batch_size: int | str = Field(
        default=0,
        description="Items per batch (0: no batches): a batch starts when the previous one "
        "has finished. A number or an expression.",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
    pause: Literal["None", "AfterFirstBatch", "EveryBatch"] = Field(
        default="None",
        description="Wait for `kubectl annotate exe <name> koos.io/continue=<step>` after the "
        "first batch (a canary) or after every batch. Needs batchSize.",
    )
    collect_outputs: bool = Field(
        default=True,
        description="Collect each output key of the items as a list in item order (at most "
        "64 KiB in all, else the step fails with OutputsTooLarge). false: keep no outputs.",
    )


class Step(KoosModel):
    """One step of a runbook: exactly one action (`run`, `sleep` or `approve`) and how to
    run it."""

    name: str = Field(
        description="Unique name of the step (a DNS label: lowercase letters, digits, '-')."
    )
    description: str | None = Field(default=None, description="What the step does.")
    depends_on: list[str] | None = Field(
        default=None,
        description="Steps that must finish first. Unset: the previous step in the list. "
        "[]: start at once.",
    )
    when: str | None = Field(
        default=None,
        description="An expression; the step is skipped (phase Skipped) when it is false.",
    )
    run: RunAction | None = Field(default=None, description="Run a container as a Job.")
    sleep: SleepAction | None = Field(default=None, description="Wait for a while.")
    approve: ApproveAction | None = Field(
        default=None, description="Wait for people to approve with kubectl annotate."
    )
    loop: Loop | None = Field(
        default=None,
        description="Run the step once per item (run steps), with concurrency, maxErrors "
        "and batches.",
    )
    retries: RetryPolicy | None = Field(
        default=None,
        description="Retry a failed attempt (each attempt is a new Job; in a loop, per item).",
    )
    timeout: str | None = Field(
        default=None, description="Fail an attempt that runs longer, e.g. 10m."
    )
    start_timeout: str | None = Field(
        default=None,
        description="run steps: fail an attempt whose Pod has not started this long after "
        "its Job was created, e.g. 15m (default 5m). Meanwhile a Pod waiting on a missing "
        "Secret or ConfigMap or an image it cannot pull says so in the step's message.",
    )
    on_error: Literal["Abort", "Continue"] = Field(
        default="Abort",
        description="Abort: start nothing new, let running steps finish, fail the Execution. "
        "Continue: carry on as if the step had succeeded, without outputs.",
    )


class TemplateSpec(KoosModel):
    description: str | None = Field(default=None, description="What the runbook does.")
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount every Job of this template runs as (default: the "
        "namespace's default ServiceAccount).",
    )
    parameters: dict[str, Parameter] = Field(
        default_factory=dict, description="Inputs of the runbook, by name."
    )
    steps: list[Step] = Field(min_length=1, description="The steps, in order.")
    finally_: list[Step] | None = Field(
        default=None,
        alias="finally",
        description="Steps that always run after everything else, whatever happened.",
    )
    outputs: dict[str, str] | None = Field(
        default=None,
        description="Results of the runbook, as expressions over step outputs and parameters.",
    )

    def all_steps(self) -> list[Step]:
        return [*self.steps, *(self.finally_ or [])]


class TemplateStatus(KoosModel):
    observed_generation: int | None = Field(
        default=None, description="The generation the status was computed for."
    )
    step_count: int | None = Field(
        default=None, description="Number of steps, finally steps included."
    )
    conditions: list[Condition] | None = Field(
        default=None, description="Ready: whether the template is valid."
    )


class Template(KoosModel):
    """A reusable runbook: parameters, steps, outputs. Run it with an Execution."""

    api_version: str = Field(default="koos.io/v1alpha1", description="koos.io/v1alpha1")
    kind: str = Field(default="Template", description="Template")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard metadata.")
    spec: TemplateSpec = Field(description="The runbook.")
    status: TemplateStatus | None = Field(default=None, description="Validation result.")
