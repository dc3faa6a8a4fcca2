"""Table column definitions kube-apiserver 1.32 sends for the built-in kinds the sandbox serves.

Names, types, priorities and order come from pkg/printers/internalversion/printers.go; each
description is the Go type's swagger doc the printer quotes. kubectl lays its columns out from
these, hides priority-1 ones unless `-o wide`, and never shows descriptions.

Invariant: data only; lists here are shared, so callers copy before changing them.
"""

from __future__ import annotations

from typing import Any

Column = dict[str, Any]


def column(
    name: str, kind: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> Column:
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
NAME = column("Name", description=NAME_DESCRIPTION, fmt="name")
AGE = column("Age", description=AGE_DESCRIPTION)
CREATED_AT = column("Created At", "date", AGE_DESCRIPTION)
_CONTAINERS = column(
    "Containers", description="Names of each container in the template.", priority=1
)
_IMAGES = column(
    "Images", description="Images referenced by each container in the template.", priority=1
)
_NODE_ADDRESSES = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More "
    "info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is "
    "declared as mergeable, but the merge key is not sufficiently unique, which can cause data "
    "corruption when it is merged. Callers should instead use a full-replacement patch. See "
    "https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change "
    "during the lifetime of a Node. However, there are some exceptions where this may not be "
    "possible, such as Pods that inherit a Node's address in its own status or consumers of the "
    "downward API (status.hostIP)."
)

POD = [
    NAME,
    column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
    column("Status", description="The aggregate status of the containers in this pod."),
    column(
        "Restarts",
        description="The number of times the containers in this pod have been restarted and "
        "when the last container in this pod has restarted.",
    ),
    AGE,
    column(
        "IP",
        description="podIP address allocated to the pod. Routable at least within the cluster. "
        "Empty if not yet allocated.",
        priority=1,
    ),
    column(
        "Node",
        description="NodeName is a request to schedule this pod onto a specific node. If it is "
        "non-empty, the scheduler simply schedules this pod onto that node, assuming that it fits "
        "resource requirements.",
        priority=1,
    ),
    column(
        "Nominated Node",
        description="nominatedNodeName is set only when this pod preempts other pods on the node, "
        "but it cannot be scheduled right away as preemption victims receive their graceful "
        "termination periods. This field does not guarantee that the pod will be scheduled on "
        "this node. Scheduler may decide to place the pod elsewhere if other nodes become "
        "available sooner. Scheduler may also decide to give the resources on this node to a "
        "higher priority pod that is created after preemption. As a result, this field may be "
        "different than PodSpec.nodeName when the pod is scheduled.",
        priority=1,
    ),
    column(
        "Readiness Gates",
        description="If specified, all readiness gates will be evaluated for pod readiness. A "
        "pod is ready when all its containers are ready AND all conditions specified in the "
        'readiness gates have status equal to "True" More info: '
        "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
        priority=1,
    ),
]
JOB = [
    NAME,
    column("Status", description="Status of the job."),
    column(
        "Completions",
        description="The number of pods which reached phase Succeeded. The value increases "
        "monotonically for a given spec. However, it may decrease in reaction to scale down of "
        "elastic indexed jobs.",
    ),
    column("Duration", description="Time required to complete the job."),
    AGE,
    _CONTAINERS,
    _IMAGES,
    column(
        "Selector",
        description="A label query over pods that should match the pod count. Normally, the "
        "system sets this field for you. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        priority=1,
    ),
]
NAMESPACE = [NAME, column("Status", description="The status of the namespace"), AGE]
CONFIGMAP = [
    NAME,
    column(
        "Data",
        description="Data contains the configuration data. Each key must consist of "
        "alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use "
        "the BinaryData field. The keys stored in Data must not overlap with the keys in the "
        "BinaryData field, this is enforced during validation process.",
    ),
    AGE,
]
SECRET = [
    NAME,
    column(
        "Type",
        description="Used to facilitate programmatic handling of secret data. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
    ),
    column(
        "Data",
        description="Data contains the secret data. Each key must consist of alphanumeric "
        "characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded "
        "string, representing the arbitrary (possibly non-string) data value here. Described in "
        "https://tools.ietf.org/html/rfc4648#section-4",
    ),
    AGE,
]
SERVICE_ACCOUNT = [
    NAME,
    column(
        "Secrets",
        description="Secrets is a list of the secrets in the same namespace that pods running "
        "using this ServiceAccount are allowed to use. Pods are only limited to this list if this "
        'service account has a "kubernetes.io/enforce-mountable-secrets" annotation set to '
        '"true". The "kubernetes.io/enforce-mountable-secrets" annotation is deprecated since '
        "v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field "
        "should not be used to find auto-generated service account token secrets for use outside "
        "of pods. Instead, tokens can be requested directly using the TokenRequest API, or "
        "service account token secrets can be manually created. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret",
    ),
    AGE,
]
EVENT = [
    column(
        "Last Seen",
        description="The time at which the most recent occurrence of this event was recorded.",
    ),
    column(
        "Type",
        description="Type of this event (Normal, Warning), new types could be added in the future",
    ),
    column(
        "Reason",
        description="This should be a short, machine understandable string that gives the reason "
        "for the transition into the object's current status.",
    ),
    column("Object", description="The object that this event is about."),
    column(
        "Subobject",
        description="If referring to a piece of an object instead of an entire object, this "
        "string should contain a valid JSON/Go field access statement, such as "
        "desiredState.manifest.containers[2]. For example, if the object reference is to a "
        'container within a pod, this would take on a value like: "spec.containers{name}" (where '
        '"name" refers to the name of the container that triggered the event) or if no container '
        'name is specified "spec.containers[2]" (container with index 2 in this pod). This syntax '
        "is chosen only to have some well-defined way of referencing a part of an object.",
        priority=1,
    ),
    column(
        "Source",
        description="The component reporting this event. Should be a short machine understandable "
        "string.",
        priority=1,
    ),
    column("Message", description="A human-readable description of the status of this operation."),
    column(
        "First Seen",
        description="The time at which the event was first recorded. (Time of server receipt is "
        "in TypeMeta.)",
        priority=1,
    ),
    column("Count", description="The number of times this event has occurred.", priority=1),
    {**NAME, "priority": 1},
]
DEPLOYMENT = [
    NAME,
    column("Ready", description="Number of the pod with ready state"),
    column(
        "Up-to-date",
        description="Total number of non-terminated pods targeted by this deployment that have "
        "the desired template spec.",
    ),
    column(
        "Available",
        description="Total number of available pods (ready for at least minReadySeconds) "
        "targeted by this deployment.",
    ),
    AGE,
    _CONTAINERS,
    _IMAGES,
    column(
        "Selector",
        description="Label selector for pods. Existing ReplicaSets whose pods are selected by "
        "this will be the ones affected by this deployment.",
        priority=1,
    ),
]
LEASE = [
    NAME,
    column(
        "Holder",
        description="holderIdentity contains the identity of the holder of a current lease. If "
        "Coordinated Leader Election is used, the holder identity must be equal to the elected "
        "LeaseCandidate.metadata.name field.",
    ),
    AGE,
]
NODE = [
    NAME,
    column("Status", description="The status of the node"),
    column("Roles", description="The roles of the node"),
    AGE,
    column("Version", description="Kubelet Version reported by the node."),
    column("Internal-IP", description=_NODE_ADDRESSES, priority=1),
    column("External-IP", description=_NODE_ADDRESSES, priority=1),
    column(
        "OS-Image",
        description="OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
        "(wheezy)).",
        priority=1,
    ),
    column(
        "Kernel-Version",
        description="Kernel Version reported by the node from 'uname -r' (e.g. "
        "3.16.0-0.bpo.4-amd64).",
        priority=1,
    ),
    column(
        "Container-Runtime",
        description="ContainerRuntime Version reported by the node through runtime remote API "
        "(e.g. containerd://1.4.2).",
        priority=1,
    ),
]


def _binding(what: str, role_doc: str) -> list[Column]:
    wide = [column(c, description=f"{c} in the {what}", priority=1) for c in ("Users", "Groups")]
    accounts = column("ServiceAccounts", description=f"ServiceAccounts in the {what}", priority=1)
    return [NAME, column("Role", description=role_doc), AGE, *wide, accounts]


ROLE_BINDING = _binding(
    "roleBinding",
    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global "
    "namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
)
CLUSTER_ROLE_BINDING = _binding(
    "clusterRoleBinding",
    "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be "
    "resolved, the Authorizer must return an error.",
)
WEBHOOKS = [
    NAME,
    column(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
]
