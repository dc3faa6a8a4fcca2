"""Message tables for `koos.sandbox.protobuf`: Kubernetes protobuf field numbers and JSON shape.

Role: for every message that kubectl's typed commands put on the wire, this module says which
field number carries which JSON field, what kind of value it holds, and how Go's
`encoding/json` would print it. `koos.sandbox.protobuf` walks these tables; nothing here reads
bytes.

Invariants:
- Field numbers come from the `generated.proto` files of k8s.io/api (core/v1, apps/v1,
  batch/v1, authentication/v1, authorization/v1, policy/v1) and k8s.io/apimachinery (meta/v1,
  runtime, util/intstr, api/resource), cross-checked against the `protobuf:"..."` struct tags
  of the matching `types.go`. They are stable across Kubernetes releases: a number is never
  reused, new fields only get new numbers.
- Each table lists its fields in Go struct order, which is the order `encoding/json` prints.
- The tables reference each other without cycles, so decoding depth is bounded by the schema,
  whatever the input.
- `presence` encodes the Go type and JSON tag of a field, because that decides what the API
  server's JSON shows after decoding the same bytes (see `Field`).
- A field missing from a table is skipped when decoding: the decoder ignores unknown field
  numbers, as gogo-protobuf does. Deliberately left out: `PodSpec.ephemeralContainers`
  and `resourceClaims`, volume sources other than hostPath/emptyDir/secret/nfs/
  persistentVolumeClaim/downwardAPI/configMap/projected, `PodAffinityTerm.matchLabelKeys`/
  `mismatchLabelKeys`, `Container.restartPolicyRules`, `EnvVarSource.fileKeyRef`,
  `PodStatus` container statuses, `DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential`
  and `SubjectAccessReviewSpec.authorizationOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Value kinds. Scalars map to one protobuf scalar type each; the rest are Kubernetes types
# with a JSON form of their own.
STRING = "string"
INT32 = "int32"
INT64 = "int64"
BOOL = "bool"
BYTES = "bytes"  # JSON: base64
MESSAGE = "message"  # JSON: object, from the table named by Field.type
TIME = "time"  # metav1.Time {seconds(1), nanos(2)}: JSON RFC 3339 string, zero -> null
QUANTITY = "quantity"  # resource.Quantity {string(1)}: JSON string
INT_OR_STRING = "intstr"  # intstr.IntOrString {type(1), intVal(2), strVal(3)}: int or string
FIELDS_V1 = "fieldsv1"  # metav1.FieldsV1 {Raw(1)}: the raw JSON it carries
STRING_LIST = "stringlist"  # authentication/authorization ExtraValue {items(1)}: list

SCALARS = frozenset({STRING, INT32, INT64, BOOL, BYTES})
VARINTS = frozenset({INT32, INT64, BOOL})

# Shapes.
SINGLE = "single"
LIST = "list"  # repeated
MAP = "map"  # repeated entry message {key(1): string, value(2)}

# Presence: what Go's encoding/json prints for the field.
OPT = "omitempty"  # non-pointer with `omitempty`: omitted when zero / empty
REQ = "required"  # no `omitempty`: always printed; a zero value when absent, lists/maps null
PTR = "pointer"  # pointer with `omitempty`: printed iff present on the wire
PTR_REQ = "pointer-required"  # pointer without `omitempty`: the value, or null when absent
STRUCT = "struct"  # non-pointer struct (omitempty has no effect): always printed
INLINE = "inline"  # embedded struct with `json:",inline"`: its fields merge into the parent


@dataclass(frozen=True, slots=True)
class Field:
    """One protobuf field of a message and the JSON field it becomes."""

    number: int
    json: str  # "" for INLINE
    kind: str
    type: str = ""  # the table name when kind is MESSAGE
    shape: str = SINGLE
    presence: str = OPT


def _s(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, STRING, presence=presence)


def _i32(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, INT32, presence=presence)


def _i64(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, INT64, presence=presence)


def _b(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, BOOL, presence=presence)


def _m(number: int, name: str, type_: str, presence: str = STRUCT) -> Field:
    return Field(number, name, MESSAGE, type_, presence=presence)


def _p(number: int, name: str, type_: str) -> Field:
    """A pointer to a message (`*T` with omitempty)."""
    return Field(number, name, MESSAGE, type_, presence=PTR)


def _inline(number: int, type_: str) -> Field:
    return Field(number, "", MESSAGE, type_, presence=INLINE)


def _time(number: int, name: str, presence: str = STRUCT) -> Field:
    return Field(number, name, TIME, presence=presence)


def _strs(number: int, name: str, presence: str = OPT) -> Field:
    return Field(number, name, STRING, shape=LIST, presence=presence)


def _msgs(number: int, name: str, type_: str, presence: str = OPT) -> Field:
    return Field(number, name, MESSAGE, type_, shape=LIST, presence=presence)


def _map(number: int, name: str, kind: str = STRING, type_: str = "") -> Field:
    return Field(number, name, kind, type_, shape=MAP)


META = "metadata"

MESSAGES: dict[str, tuple[Field, ...]] = {
    # --- k8s.io/apimachinery/pkg/apis/meta/v1 ---
    "ObjectMeta": (
        _s(1, "name"),
        _s(2, "generateName"),
        _s(3, "namespace"),
        _s(4, "selfLink"),
        _s(5, "uid"),
        _s(6, "resourceVersion"),
        _i64(7, "generation"),
        _time(8, "creationTimestamp"),
        _time(9, "deletionTimestamp", PTR),
        _i64(10, "deletionGracePeriodSeconds", PTR),
        _map(11, "labels"),
        _map(12, "annotations"),
        _msgs(13, "ownerReferences", "OwnerReference"),
        _strs(14, "finalizers"),
        _msgs(17, "managedFields", "ManagedFieldsEntry"),
    ),
    "OwnerReference": (
        _s(5, "apiVersion", REQ),
        _s(1, "kind", REQ),
        _s(3, "name", REQ),
        _s(4, "uid", REQ),
        _b(6, "controller", PTR),
        _b(7, "blockOwnerDeletion", PTR),
    ),
    "ManagedFieldsEntry": (
        _s(1, "manager"),
        _s(2, "operation"),
        _s(3, "apiVersion"),
        _time(4, "time", PTR),
        _s(6, "fieldsType"),
        Field(7, "fieldsV1", FIELDS_V1, presence=PTR),
        _s(8, "subresource"),
    ),
    "LabelSelector": (
        _map(1, "matchLabels"),
        _msgs(2, "matchExpressions", "LabelSelectorRequirement"),
    ),
    "LabelSelectorRequirement": (
        _s(1, "key", REQ),
        _s(2, "operator", REQ),
        _strs(3, "values"),
    ),
    "FieldSelectorRequirement": (
        _s(1, "key", REQ),
        _s(2, "operator", REQ),
        _strs(3, "values"),
    ),
    "DeleteOptions": (
        _i64(1, "gracePeriodSeconds", PTR),
        _p(2, "preconditions", "Preconditions"),
        _b(3, "orphanDependents", PTR),
        _s(4, "propagationPolicy", PTR),
        _strs(5, "dryRun"),
    ),
    "Preconditions": (
        _s(1, "uid", PTR),
        _s(2, "resourceVersion", PTR),
    ),
    # --- k8s.io/api/core/v1 ---
    "LocalObjectReference": (_s(1, "name"),),
    "ObjectReference": (
        _s(1, "kind"),
        _s(2, "namespace"),
        _s(3, "name"),
        _s(4, "uid"),
        _s(5, "apiVersion"),
        _s(6, "resourceVersion"),
        _s(7, "fieldPath"),
    ),
    "ConfigMap": (
        _m(1, META, "ObjectMeta"),
        _b(4, "immutable", PTR),
        _map(2, "data"),
        _map(3, "binaryData", BYTES),
    ),
    "Secret": (
        _m(1, META, "ObjectMeta"),
        _b(5, "immutable", PTR),
        _map(2, "data", BYTES),
        _map(4, "stringData"),
        _s(3, "type"),
    ),
    "Namespace": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "NamespaceSpec"),
        _m(3, "status", "NamespaceStatus"),
    ),
    "NamespaceSpec": (_strs(1, "finalizers"),),
    "NamespaceStatus": (
        _s(1, "phase"),
        _msgs(2, "conditions", "NamespaceCondition"),
    ),
    "NamespaceCondition": (
        _s(1, "type", REQ),
        _s(2, "status", REQ),
        _time(4, "lastTransitionTime"),
        _s(5, "reason"),
        _s(6, "message"),
    ),
    "ServiceAccount": (
        _m(1, META, "ObjectMeta"),
        _msgs(2, "secrets", "ObjectReference"),
        _msgs(3, "imagePullSecrets", "LocalObjectReference"),
        _b(4, "automountServiceAccountToken", PTR),
    ),
    "Pod": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "PodSpec"),
        _m(3, "status", "PodStatus"),
    ),
    "PodStatus": (
        _s(1, "phase"),
        _msgs(2, "conditions", "PodCondition"),
        _s(3, "message"),
        _s(4, "reason"),
        _s(11, "nominatedNodeName"),
        _s(5, "hostIP"),
        _s(6, "podIP"),
        _msgs(12, "podIPs", "PodIP"),
        _time(7, "startTime", PTR),
        _s(9, "qosClass"),
    ),
    "PodCondition": (
        _s(1, "type", REQ),
        _s(2, "status", REQ),
        _time(3, "lastProbeTime"),
        _time(4, "lastTransitionTime"),
        _s(5, "reason"),
        _s(6, "message"),
    ),
    "PodIP": (_s(1, "ip", REQ),),
    "PodTemplateSpec": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "PodSpec"),
    ),
    "PodSpec": (
        _msgs(1, "volumes", "Volume"),
        _msgs(20, "initContainers", "Container"),
        _msgs(2, "containers", "Container", REQ),
        _s(3, "restartPolicy"),
        _i64(4, "terminationGracePeriodSeconds", PTR),
        _i64(5, "activeDeadlineSeconds", PTR),
        _s(6, "dnsPolicy"),
        _map(7, "nodeSelector"),
        _s(8, "serviceAccountName"),
        _s(9, "serviceAccount"),
        _b(21, "automountServiceAccountToken", PTR),
        _s(10, "nodeName"),
        _b(11, "hostNetwork"),
        _b(12, "hostPID"),
        _b(13, "hostIPC"),
        _b(27, "shareProcessNamespace", PTR),
        _p(14, "securityContext", "PodSecurityContext"),
        _msgs(15, "imagePullSecrets", "LocalObjectReference"),
        _s(16, "hostname"),
        _s(17, "subdomain"),
        _p(18, "affinity", "Affinity"),
        _s(19, "schedulerName"),
        _msgs(22, "tolerations", "Toleration"),
        _msgs(23, "hostAliases", "HostAlias"),
        _s(24, "priorityClassName"),
        _i32(25, "priority", PTR),
        _p(26, "dnsConfig", "PodDNSConfig"),
        _msgs(28, "readinessGates", "PodReadinessGate"),
        _s(29, "runtimeClassName", PTR),
        _b(30, "enableServiceLinks", PTR),
        _s(31, "preemptionPolicy", PTR),
        _map(32, "overhead", QUANTITY),
        _msgs(33, "topologySpreadConstraints", "TopologySpreadConstraint"),
        _b(35, "setHostnameAsFQDN", PTR),
        _p(36, "os", "PodOS"),
        _b(37, "hostUsers", PTR),
        _msgs(38, "schedulingGates", "PodSchedulingGate"),
        _p(40, "resources", "ResourceRequirements"),
    ),
    "Container": (
        _s(1, "name", REQ),
        _s(2, "image"),
        _strs(3, "command"),
        _strs(4, "args"),
        _s(5, "workingDir"),
        _msgs(6, "ports", "ContainerPort"),
        _msgs(19, "envFrom", "EnvFromSource"),
        _msgs(7, "env", "EnvVar"),
        _m(8, "resources", "ResourceRequirements"),
        _msgs(23, "resizePolicy", "ContainerResizePolicy"),
        _s(24, "restartPolicy", PTR),
        _msgs(9, "volumeMounts", "VolumeMount"),
        _msgs(21, "volumeDevices", "VolumeDevice"),
        _p(10, "livenessProbe", "Probe"),
        _p(11, "readinessProbe", "Probe"),
        _p(22, "startupProbe", "Probe"),
        _p(12, "lifecycle", "Lifecycle"),
        _s(13, "terminationMessagePath"),
        _s(20, "terminationMessagePolicy"),
        _s(14, "imagePullPolicy"),
        _p(15, "securityContext", "SecurityContext"),
        _b(16, "stdin"),
        _b(17, "stdinOnce"),
        _b(18, "tty"),
    ),
    "ContainerPort": (
        _s(1, "name"),
        _i32(2, "hostPort"),
        _i32(3, "containerPort", REQ),
        _s(4, "protocol"),
        _s(5, "hostIP"),
    ),
    "ContainerResizePolicy": (
        _s(1, "resourceName", REQ),
        _s(2, "restartPolicy", REQ),
    ),
    "EnvFromSource": (
        _s(1, "prefix"),
        _p(2, "configMapRef", "ConfigMapEnvSource"),
        _p(3, "secretRef", "SecretEnvSource"),
    ),
    "ConfigMapEnvSource": (_inline(1, "LocalObjectReference"), _b(2, "optional", PTR)),
    "SecretEnvSource": (_inline(1, "LocalObjectReference"), _b(2, "optional", PTR)),
    "EnvVar": (
        _s(1, "name", REQ),
        _s(2, "value"),
        _p(3, "valueFrom", "EnvVarSource"),
    ),
    "EnvVarSource": (
        _p(1, "fieldRef", "ObjectFieldSelector"),
        _p(2, "resourceFieldRef", "ResourceFieldSelector"),
        _p(3, "configMapKeyRef", "ConfigMapKeySelector"),
        _p(4, "secretKeyRef", "SecretKeySelector"),
    ),
    "ObjectFieldSelector": (_s(1, "apiVersion"), _s(2, "fieldPath", REQ)),
    "ResourceFieldSelector": (
        _s(1, "containerName"),
        _s(2, "resource", REQ),
        Field(3, "divisor", QUANTITY, presence=STRUCT),
    ),
    "ConfigMapKeySelector": (
        _inline(1, "LocalObjectReference"),
        _s(2, "key", REQ),
        _b(3, "optional", PTR),
    ),
    "SecretKeySelector": (
        _inline(1, "LocalObjectReference"),
        _s(2, "key", REQ),
        _b(3, "optional", PTR),
    ),
    "ResourceRequirements": (
        _map(1, "limits", QUANTITY),
        _map(2, "requests", QUANTITY),
        _msgs(3, "claims", "ResourceClaim"),
    ),
    "ResourceClaim": (_s(1, "name", REQ), _s(2, "request")),
    "VolumeMount": (
        _s(1, "name", REQ),
        _b(2, "readOnly"),
        _s(7, "recursiveReadOnly", PTR),
        _s(3, "mountPath", REQ),
        _s(4, "subPath"),
        _s(5, "mountPropagation", PTR),
        _s(6, "subPathExpr"),
    ),
    "VolumeDevice": (_s(1, "name", REQ), _s(2, "devicePath", REQ)),
    "Probe": (
        _inline(1, "ProbeHandler"),
        _i32(2, "initialDelaySeconds"),
        _i32(3, "timeoutSeconds"),
        _i32(4, "periodSeconds"),
        _i32(5, "successThreshold"),
        _i32(6, "failureThreshold"),
        _i64(7, "terminationGracePeriodSeconds", PTR),
    ),
    "ProbeHandler": (
        _p(1, "exec", "ExecAction"),
        _p(2, "httpGet", "HTTPGetAction"),
        _p(3, "tcpSocket", "TCPSocketAction"),
        _p(4, "grpc", "GRPCAction"),
    ),
    "ExecAction": (_strs(1, "command"),),
    "HTTPGetAction": (
        _s(1, "path"),
        Field(2, "port", INT_OR_STRING, presence=STRUCT),
        _s(3, "host"),
        _s(4, "scheme"),
        _msgs(5, "httpHeaders", "HTTPHeader"),
    ),
    "HTTPHeader": (_s(1, "name", REQ), _s(2, "value", REQ)),
    "TCPSocketAction": (
        Field(1, "port", INT_OR_STRING, presence=STRUCT),
        _s(2, "host"),
    ),
    "GRPCAction": (_i32(1, "port", REQ), _s(2, "service", PTR_REQ)),
    "Lifecycle": (
        _p(1, "postStart", "LifecycleHandler"),
        _p(2, "preStop", "LifecycleHandler"),
        _s(3, "stopSignal", PTR),
    ),
    "LifecycleHandler": (
        _p(1, "exec", "ExecAction"),
        _p(2, "httpGet", "HTTPGetAction"),
        _p(3, "tcpSocket", "TCPSocketAction"),
        _p(4, "sleep", "SleepAction"),
    ),
    "SleepAction": (_i64(1, "seconds", REQ),),
    "SecurityContext": (
        _p(1, "capabilities", "Capabilities"),
        _b(2, "privileged", PTR),
        _p(3, "seLinuxOptions", "SELinuxOptions"),
        _p(10, "windowsOptions", "WindowsSecurityContextOptions"),
        _i64(4, "runAsUser", PTR),
        _i64(8, "runAsGroup", PTR),
        _b(5, "runAsNonRoot", PTR),
        _b(6, "readOnlyRootFilesystem", PTR),
        _b(7, "allowPrivilegeEscalation", PTR),
        _s(9, "procMount", PTR),
        _p(11, "seccompProfile", "SeccompProfile"),
        _p(12, "appArmorProfile", "AppArmorProfile"),
    ),
    "Capabilities": (_strs(1, "add"), _strs(2, "drop")),
    "SELinuxOptions": (_s(1, "user"), _s(2, "role"), _s(3, "type"), _s(4, "level")),
    "WindowsSecurityContextOptions": (
        _s(1, "gmsaCredentialSpecName", PTR),
        _s(2, "gmsaCredentialSpec", PTR),
        _s(3, "runAsUserName", PTR),
        _b(4, "hostProcess", PTR),
    ),
    "SeccompProfile": (_s(1, "type", REQ), _s(2, "localhostProfile", PTR)),
    "AppArmorProfile": (_s(1, "type", REQ), _s(2, "localhostProfile", PTR)),
    "PodSecurityContext": (
        _p(1, "seLinuxOptions", "SELinuxOptions"),
        _p(8, "windowsOptions", "WindowsSecurityContextOptions"),
        _i64(2, "runAsUser", PTR),
        _i64(6, "runAsGroup", PTR),
        _b(3, "runAsNonRoot", PTR),
        Field(4, "supplementalGroups", INT64, shape=LIST),
        _s(12, "supplementalGroupsPolicy", PTR),
        _i64(5, "fsGroup", PTR),
        _msgs(7, "sysctls", "Sysctl"),
        _s(9, "fsGroupChangePolicy", PTR),
        _p(10, "seccompProfile", "SeccompProfile"),
        _p(11, "appArmorProfile", "AppArmorProfile"),
        _s(13, "seLinuxChangePolicy", PTR),
    ),
    "Sysctl": (_s(1, "name", REQ), _s(2, "value", REQ)),
    "Toleration": (
        _s(1, "key"),
        _s(2, "operator"),
        _s(3, "value"),
        _s(4, "effect"),
        _i64(5, "tolerationSeconds", PTR),
    ),
    "HostAlias": (_s(1, "ip", REQ), _strs(2, "hostnames")),
    "PodDNSConfig": (
        _strs(1, "nameservers"),
        _strs(2, "searches"),
        _msgs(3, "options", "PodDNSConfigOption"),
    ),
    "PodDNSConfigOption": (_s(1, "name"), _s(2, "value", PTR)),
    "PodReadinessGate": (_s(1, "conditionType", REQ),),
    "PodSchedulingGate": (_s(1, "name", REQ),),
    "PodOS": (_s(1, "name", REQ),),
    "Affinity": (
        _p(1, "nodeAffinity", "NodeAffinity"),
        _p(2, "podAffinity", "PodAffinity"),
        _p(3, "podAntiAffinity", "PodAffinity"),
    ),
    "NodeAffinity": (
        _p(1, "requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        _msgs(2, "preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm"),
    ),
    "NodeSelector": (_msgs(1, "nodeSelectorTerms", "NodeSelectorTerm", REQ),),
    "NodeSelectorTerm": (
        _msgs(1, "matchExpressions", "NodeSelectorRequirement"),
        _msgs(2, "matchFields", "NodeSelectorRequirement"),
    ),
    "NodeSelectorRequirement": (
        _s(1, "key", REQ),
        _s(2, "operator", REQ),
        _strs(3, "values"),
    ),
    "PreferredSchedulingTerm": (
        _i32(1, "weight", REQ),
        _m(2, "preference", "NodeSelectorTerm"),
    ),
    # PodAntiAffinity has the same fields and numbers as PodAffinity.
    "PodAffinity": (
        _msgs(1, "requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        _msgs(2, "preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm"),
    ),
    "PodAffinityTerm": (
        _p(1, "labelSelector", "LabelSelector"),
        _strs(2, "namespaces"),
        _s(3, "topologyKey", REQ),
        _p(4, "namespaceSelector", "LabelSelector"),
    ),
    "WeightedPodAffinityTerm": (
        _i32(1, "weight", REQ),
        _m(2, "podAffinityTerm", "PodAffinityTerm"),
    ),
    "TopologySpreadConstraint": (
        _i32(1, "maxSkew", REQ),
        _s(2, "topologyKey", REQ),
        _s(3, "whenUnsatisfiable", REQ),
        _p(4, "labelSelector", "LabelSelector"),
        _i32(5, "minDomains", PTR),
        _s(6, "nodeAffinityPolicy", PTR),
        _s(7, "nodeTaintsPolicy", PTR),
        _strs(8, "matchLabelKeys"),
    ),
    "Volume": (_s(1, "name", REQ), _inline(2, "VolumeSource")),
    "VolumeSource": (
        _p(1, "hostPath", "HostPathVolumeSource"),
        _p(2, "emptyDir", "EmptyDirVolumeSource"),
        _p(6, "secret", "SecretVolumeSource"),
        _p(7, "nfs", "NFSVolumeSource"),
        _p(10, "persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        _p(16, "downwardAPI", "DownwardAPIVolumeSource"),
        _p(19, "configMap", "ConfigMapVolumeSource"),
        _p(26, "projected", "ProjectedVolumeSource"),
    ),
    "HostPathVolumeSource": (_s(1, "path", REQ), _s(2, "type", PTR)),
    "EmptyDirVolumeSource": (
        _s(1, "medium"),
        Field(2, "sizeLimit", QUANTITY, presence=PTR),
    ),
    "SecretVolumeSource": (
        _s(1, "secretName"),
        _msgs(2, "items", "KeyToPath"),
        _i32(3, "defaultMode", PTR),
        _b(4, "optional", PTR),
    ),
    "ConfigMapVolumeSource": (
        _inline(1, "LocalObjectReference"),
        _msgs(2, "items", "KeyToPath"),
        _i32(3, "defaultMode", PTR),
        _b(4, "optional", PTR),
    ),
    "KeyToPath": (_s(1, "key", REQ), _s(2, "path", REQ), _i32(3, "mode", PTR)),
    "NFSVolumeSource": (_s(1, "server", REQ), _s(2, "path", REQ), _b(3, "readOnly")),
    "PersistentVolumeClaimVolumeSource": (_s(1, "claimName", REQ), _b(2, "readOnly")),
    "DownwardAPIVolumeSource": (
        _msgs(1, "items", "DownwardAPIVolumeFile"),
        _i32(2, "defaultMode", PTR),
    ),
    "DownwardAPIVolumeFile": (
        _s(1, "path", REQ),
        _p(2, "fieldRef", "ObjectFieldSelector"),
        _p(3, "resourceFieldRef", "ResourceFieldSelector"),
        _i32(4, "mode", PTR),
    ),
    "ProjectedVolumeSource": (
        _msgs(1, "sources", "VolumeProjection", REQ),
        _i32(2, "defaultMode", PTR),
    ),
    "VolumeProjection": (
        _p(1, "secret", "SecretProjection"),
        _p(2, "downwardAPI", "DownwardAPIProjection"),
        _p(3, "configMap", "ConfigMapProjection"),
        _p(4, "serviceAccountToken", "ServiceAccountTokenProjection"),
    ),
    "SecretProjection": (
        _inline(1, "LocalObjectReference"),
        _msgs(2, "items", "KeyToPath"),
        _b(4, "optional", PTR),
    ),
    "ConfigMapProjection": (
        _inline(1, "LocalObjectReference"),
        _msgs(2, "items", "KeyToPath"),
        _b(4, "optional", PTR),
    ),
    "DownwardAPIProjection": (_msgs(1, "items", "DownwardAPIVolumeFile"),),
    "ServiceAccountTokenProjection": (
        _s(1, "audience"),
        _i64(2, "expirationSeconds", PTR),
        _s(3, "path", REQ),
    ),
    # --- k8s.io/api/batch/v1 ---
    "Job": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "JobSpec"),
        _m(3, "status", "JobStatus"),
    ),
    "JobSpec": (
        _i32(1, "parallelism", PTR),
        _i32(2, "completions", PTR),
        _i64(3, "activeDeadlineSeconds", PTR),
        _p(11, "podFailurePolicy", "PodFailurePolicy"),
        _p(16, "successPolicy", "SuccessPolicy"),
        _i32(7, "backoffLimit", PTR),
        _i32(12, "backoffLimitPerIndex", PTR),
        _i32(13, "maxFailedIndexes", PTR),
        _p(4, "selector", "LabelSelector"),
        _b(5, "manualSelector", PTR),
        _m(6, "template", "PodTemplateSpec"),
        _i32(8, "ttlSecondsAfterFinished", PTR),
        _s(9, "completionMode", PTR),
        _b(10, "suspend", PTR),
        _s(14, "podReplacementPolicy", PTR),
        _s(15, "managedBy", PTR),
    ),
    "PodFailurePolicy": (_msgs(1, "rules", "PodFailurePolicyRule", REQ),),
    "PodFailurePolicyRule": (
        _s(1, "action", REQ),
        _m(2, "onExitCodes", "PodFailurePolicyOnExitCodesRequirement", PTR_REQ),
        _msgs(3, "onPodConditions", "PodFailurePolicyOnPodConditionsPattern", REQ),
    ),
    "PodFailurePolicyOnExitCodesRequirement": (
        _s(1, "containerName", PTR_REQ),
        _s(2, "operator", REQ),
        Field(3, "values", INT32, shape=LIST, presence=REQ),
    ),
    "PodFailurePolicyOnPodConditionsPattern": (_s(1, "type", REQ), _s(2, "status", REQ)),
    "SuccessPolicy": (_msgs(1, "rules", "SuccessPolicyRule", REQ),),
    "SuccessPolicyRule": (_s(1, "succeededIndexes", PTR), _i32(2, "succeededCount", PTR)),
    "JobStatus": (
        _msgs(1, "conditions", "JobCondition"),
        _time(2, "startTime", PTR),
        _time(3, "completionTime", PTR),
        _i32(4, "active"),
        _i32(5, "succeeded"),
        _i32(6, "failed"),
        _i32(11, "terminating", PTR),
        _s(7, "completedIndexes"),
        _s(10, "failedIndexes", PTR),
        _p(8, "uncountedTerminatedPods", "UncountedTerminatedPods"),
        _i32(9, "ready", PTR),
    ),
    "UncountedTerminatedPods": (_strs(1, "succeeded"), _strs(2, "failed")),
    "JobCondition": (
        _s(1, "type", REQ),
        _s(2, "status", REQ),
        _time(3, "lastProbeTime"),
        _time(4, "lastTransitionTime"),
        _s(5, "reason"),
        _s(6, "message"),
    ),
    "JobTemplateSpec": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "JobSpec"),
    ),
    "CronJob": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "CronJobSpec"),
        _m(3, "status", "CronJobStatus"),
    ),
    "CronJobSpec": (
        _s(1, "schedule", REQ),
        _s(8, "timeZone", PTR),
        _i64(2, "startingDeadlineSeconds", PTR),
        _s(3, "concurrencyPolicy"),
        _b(4, "suspend", PTR),
        _m(5, "jobTemplate", "JobTemplateSpec"),
        _i32(6, "successfulJobsHistoryLimit", PTR),
        _i32(7, "failedJobsHistoryLimit", PTR),
    ),
    "CronJobStatus": (
        _msgs(1, "active", "ObjectReference"),
        _time(4, "lastScheduleTime", PTR),
        _time(5, "lastSuccessfulTime", PTR),
    ),
    # --- k8s.io/api/apps/v1 ---
    "Deployment": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "DeploymentSpec"),
        _m(3, "status", "DeploymentStatus"),
    ),
    "DeploymentSpec": (
        _i32(1, "replicas", PTR),
        _m(2, "selector", "LabelSelector", PTR_REQ),
        _m(3, "template", "PodTemplateSpec"),
        _m(4, "strategy", "DeploymentStrategy"),
        _i32(5, "minReadySeconds"),
        _i32(6, "revisionHistoryLimit", PTR),
        _b(7, "paused"),
        _i32(9, "progressDeadlineSeconds", PTR),
    ),
    "DeploymentStrategy": (
        _s(1, "type"),
        _p(2, "rollingUpdate", "RollingUpdateDeployment"),
    ),
    "RollingUpdateDeployment": (
        Field(1, "maxUnavailable", INT_OR_STRING, presence=PTR),
        Field(2, "maxSurge", INT_OR_STRING, presence=PTR),
    ),
    "DeploymentStatus": (
        _i64(1, "observedGeneration"),
        _i32(2, "replicas"),
        _i32(3, "updatedReplicas"),
        _i32(7, "readyReplicas"),
        _i32(4, "availableReplicas"),
        _i32(5, "unavailableReplicas"),
        _i32(9, "terminatingReplicas", PTR),
        _msgs(6, "conditions", "DeploymentCondition"),
        _i32(8, "collisionCount", PTR),
    ),
    "DeploymentCondition": (
        _s(1, "type", REQ),
        _s(2, "status", REQ),
        _time(6, "lastUpdateTime"),
        _time(7, "lastTransitionTime"),
        _s(4, "reason"),
        _s(5, "message"),
    ),
    # --- k8s.io/api/policy/v1 ---
    "Eviction": (
        _m(1, META, "ObjectMeta"),
        _p(2, "deleteOptions", "DeleteOptions"),
    ),
    # --- k8s.io/api/authentication/v1 ---
    "TokenRequest": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "TokenRequestSpec"),
        _m(3, "status", "TokenRequestStatus"),
    ),
    "TokenRequestSpec": (
        _strs(1, "audiences", REQ),
        _i64(4, "expirationSeconds", PTR_REQ),
        _m(3, "boundObjectRef", "BoundObjectReference", PTR_REQ),
    ),
    "TokenRequestStatus": (_s(1, "token", REQ), _time(2, "expirationTimestamp")),
    "BoundObjectReference": (
        _s(1, "kind"),
        _s(2, "apiVersion"),
        _s(3, "name"),
        _s(4, "uid"),
    ),
    "SelfSubjectReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "status", "SelfSubjectReviewStatus"),
    ),
    "SelfSubjectReviewStatus": (_m(1, "userInfo", "UserInfo"),),
    "UserInfo": (
        _s(1, "username"),
        _s(2, "uid"),
        _strs(3, "groups"),
        _map(4, "extra", STRING_LIST),
    ),
    "TokenReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "TokenReviewSpec"),
        _m(3, "status", "TokenReviewStatus"),
    ),
    "TokenReviewSpec": (_s(1, "token"), _strs(2, "audiences")),
    "TokenReviewStatus": (
        _b(1, "authenticated"),
        _m(2, "user", "UserInfo"),
        _strs(4, "audiences"),
        _s(3, "error"),
    ),
    # --- k8s.io/api/authorization/v1 ---
    "SelfSubjectAccessReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "SelfSubjectAccessReviewSpec"),
        _m(3, "status", "SubjectAccessReviewStatus"),
    ),
    "SelfSubjectAccessReviewSpec": (
        _p(1, "resourceAttributes", "ResourceAttributes"),
        _p(2, "nonResourceAttributes", "NonResourceAttributes"),
    ),
    "SubjectAccessReview": (
        _m(1, META, "ObjectMeta"),
        _m(2, "spec", "SubjectAccessReviewSpec"),
        _m(3, "status", "SubjectAccessReviewStatus"),
    ),
    "SubjectAccessReviewSpec": (
        _p(1, "resourceAttributes", "ResourceAttributes"),
        _p(2, "nonResourceAttributes", "NonResourceAttributes"),
        _s(3, "user"),
        _strs(4, "groups"),
        _map(5, "extra", STRING_LIST),
        _s(6, "uid"),
    ),
    "ResourceAttributes": (
        _s(1, "namespace"),
        _s(2, "verb"),
        _s(3, "group"),
        _s(4, "version"),
        _s(5, "resource"),
        _s(6, "subresource"),
        _s(7, "name"),
        _p(8, "fieldSelector", "FieldSelectorAttributes"),
        _p(9, "labelSelector", "LabelSelectorAttributes"),
    ),
    "FieldSelectorAttributes": (
        _s(1, "rawSelector"),
        _msgs(2, "requirements", "FieldSelectorRequirement"),
    ),
    "LabelSelectorAttributes": (
        _s(1, "rawSelector"),
        _msgs(2, "requirements", "LabelSelectorRequirement"),
    ),
    "NonResourceAttributes": (_s(1, "path"), _s(2, "verb")),
    "SubjectAccessReviewStatus": (
        _b(1, "allowed", REQ),
        _b(4, "denied"),
        _s(2, "reason"),
        _s(3, "evaluationError"),
    ),
}

# Top-level kinds: (apiVersion, kind) -> table. `DeleteOptions` is registered in every group
# version, so it is looked up by kind alone (see ANY_VERSION).
KINDS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Pod"): "Pod",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("apps/v1", "Deployment"): "Deployment",
    ("policy/v1", "Eviction"): "Eviction",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "TokenReview"): "TokenReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SubjectAccessReview"): "SubjectAccessReview",
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
}
ANY_VERSION: dict[str, str] = {"DeleteOptions": "DeleteOptions"}


def table_for(api_version: str, kind: str) -> str | None:
    """The table that decodes (apiVersion, kind), or None when it is not covered."""
    name = KINDS.get((api_version, kind))
    if name is None and api_version:
        name = ANY_VERSION.get(kind)
    return name
