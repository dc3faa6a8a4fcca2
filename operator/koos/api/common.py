"""Shared model base and the `metav1.Condition` shape used by every koos resource."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

# A free-form value in a CRD schema: kept as written, not pruned.
PRESERVE: JsonDict = {"x-kubernetes-preserve-unknown-fields": True}


class KoosModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are ignored on read
    (the API server prunes them anyway), models are immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
        serialize_by_alias=True,
    )


class Condition(KoosModel):
    """A metav1.Condition: the latest observation of one aspect of the object's state."""

    type: str = Field(description="Type of condition in CamelCase, e.g. Succeeded or Ready.")
    status: Literal["True", "False", "Unknown"] = Field(
        description="Status of the condition: True, False or Unknown."
    )
    observed_generation: int | None = Field(
        default=None,
        description="The metadata.generation of the object this condition was set for.",
    )
    last_transition_time: str = Field(
        description="When the condition last changed from one status to another (RFC 3339)."
    )
    reason: str = Field(
        description="A CamelCase, machine-readable reason for the condition's last transition."
    )
    message: str = Field(
        default="", description="A human-readable message: what happened and what to do."
    )


class KeySelector(KoosModel):
    """A key of a Secret or ConfigMap in the Execution's namespace."""

    name: str = Field(min_length=1, description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, description="The key within it.")
