"""Names koos shares with the cluster: API group and version, labels, annotations, limits."""

from __future__ import annotations

GROUP = "koos.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "koos"

MANAGER = "koos"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_EXECUTION = f"{GROUP}/execution"
LABEL_STEP = f"{GROUP}/step"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_ITEM = f"{GROUP}/item"  # the index of a loop item's Job

ANNOTATION_CANCEL = f"{GROUP}/cancel"
# On a step's Pods: the full name of their Execution.
ANNOTATION_EXECUTION = f"{GROUP}/execution"
# Stamped on an Execution at CREATE by the admission webhook, from the API server's userInfo.
ANNOTATION_CREATED_BY = f"{GROUP}/created-by"
# Written by approvers on an Approval; consumed by the admission webhook.
ANNOTATION_DECISION = f"{GROUP}/decision"
ANNOTATION_REASON = f"{GROUP}/reason"
# Written only by the admission webhook: the signed record of verified decisions.
ANNOTATION_DECISIONS = f"{GROUP}/decisions"
# Written by the operator on each Approval it creates: an HMAC with its signing key over the
# Approval's name, namespace, Execution uid and request, so that no copy passes as its own.
ANNOTATION_REQUEST_SIGNATURE = f"{GROUP}/request-signature"
LABEL_APPROVAL_STEP = f"{GROUP}/step"
# Run commands (value: a step name), consumed by the operator.
ANNOTATION_CONTINUE = f"{GROUP}/continue"
ANNOTATION_RETRY = f"{GROUP}/retry"
ANNOTATION_SKIP = f"{GROUP}/skip"
ANNOTATION_RERUN_FROM = f"{GROUP}/rerun-from"
STEP_COMMANDS = (ANNOTATION_CONTINUE, ANNOTATION_RETRY, ANNOTATION_SKIP, ANNOTATION_RERUN_FROM)
COMMAND_ANNOTATIONS = (ANNOTATION_CANCEL, *STEP_COMMANDS)
# Written by the operator with each consumed step command: how many it has applied (equal to
# status.commandsApplied once the removal landed), so a command left over by a crash between
# the status write and its removal is not applied twice.
ANNOTATION_COMMANDS_CONSUMED = f"{GROUP}/commands-consumed"
# Stamped by the admission webhook with each step command: who sent it.
ANNOTATION_COMMAND_BY = f"{GROUP}/command-by"

FINALIZER = f"{GROUP}/finalizer"

# A run step's output is its container's termination message: the kubelet keeps 4 KiB.
OUTPUT_LIMIT = 4096
OUTPUT_PATH = "/dev/termination-log"
OUTPUT_ENV = "KOOS_OUTPUT"
PARAM_ENV_PREFIX = "KOOS_PARAM_"

LABEL_SCHEDULE = f"{GROUP}/schedule"
# The fire an Execution of a Schedule belongs to (RFC 3339).
ANNOTATION_SCHEDULED_TIME = f"{GROUP}/scheduled-time"
