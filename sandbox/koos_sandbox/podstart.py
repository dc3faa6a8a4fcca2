"""What keeps a container from being created, as a kubelet finds it before it starts one.

- An image reference that does not parse: the container waits in `InvalidImageName` for
  good (a Pod's images cannot change), with the kubelet's message.
- A `secret` or `configMap` volume whose source is missing (and not `optional`): the Pod
  cannot mount it, so its containers stay `ContainerCreating` (the real kubelet says why only
  in a FailedMount Event) until a Secret or ConfigMap of the namespace changes.
"""

from __future__ import annotations

import re

from koos_sandbox.objects import Obj
from koos_sandbox.podenv import Lookup

# The reference grammar of the container runtimes (distribution/reference), simplified:
# [domain/]path[:tag][@digest], path components lowercase.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?/)?"
_REFERENCE = re.compile(
    rf"{_DOMAIN}{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?"
)


def image_problem(image: str) -> str | None:
    """The kubelet's message for an image reference it cannot parse, or None."""
    if _REFERENCE.fullmatch(image):
        return None
    return (
        f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": '
        "invalid reference format"
    )


def missing_volume(lookup: Lookup, pod: Obj) -> str | None:
    """The first non-optional secret/configMap volume whose source is missing, or None."""
    namespace = pod["metadata"].get("namespace", "")
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        for field, kind, name_key in (
            ("secret", "Secret", "secretName"),
            ("configMap", "ConfigMap", "name"),
        ):
            source = volume.get(field)
            if not isinstance(source, dict) or source.get("optional"):
                continue
            if lookup(kind, namespace, str(source.get(name_key, ""))) is None:
                return str(volume.get("name", ""))
    return None
