"""Pods that do not start: when a run step's Pod is looked at, and what stops its attempt.

koos does not watch Pods (see `koos.k8s.gather`). A Pod that cannot start — a missing Secret
or ConfigMap, an image that cannot be pulled, no node for it — changes nothing on its Job but
`status.ready` staying 0, so without a look the run would stay Running for ever. So while a
step's Job is Active and has not reported a ready Pod, the planner wakes at `next_probe`
(`FIRST_PROBE` after the Job's creation, then at doubling gaps up to `LONGEST_GAP`) and the
k8s layer lists the Job's Pods at such a pass (`is_probe_due`), reading the step container's
waiting reason. Then:

- a reason that needs a person (`NEEDS_A_PERSON`) shows at once in the step's message, the
  Execution's condition and a Warning Event, with when the attempt will fail;
- an attempt whose Pod has not started `start_timeout` after its Job was created (the step's
  `startTimeout`, default 5m) fails with reason `NotStarted` and what the Pod was waiting
  for, and its Job is deleted; retries apply as to any failed attempt;
- once the Pod starts (the cause was fixed), the message goes and the probes stop.

A normal run costs nothing more: a Job whose Pod is ready is never probed, and a Job that ends
first wakes the run through the Job watch. Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from koos.api.template import Step
from koos.engine.durations import parse_duration
from koos.engine.facts import JobFacts

NEEDS_A_PERSON = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
    }
)
DEFAULT_START_TIMEOUT = timedelta(minutes=5)
FIRST_PROBE = timedelta(seconds=5)
LONGEST_GAP = timedelta(minutes=2)


def start_timeout(step: Step) -> timedelta:
    """How long the step's Pod may take to start (never less than the first probe: the
    attempt is failed only on what a probe saw)."""
    limit = parse_duration(step.start_timeout) if step.start_timeout else DEFAULT_START_TIMEOUT
    return max(limit, FIRST_PROBE)


def is_probe_due(created: datetime | None, now: datetime) -> bool:
    """Whether an Active Job without a ready Pod should have its Pods listed now."""
    return created is not None and now - created >= FIRST_PROBE


def next_probe(created: datetime, now: datetime) -> datetime:
    """The first probe time after `now`: FIRST_PROBE after `created`, then gaps of twice
    the previous one (10 s, 20 s, …) up to LONGEST_GAP."""
    due, gap = created + FIRST_PROBE, FIRST_PROBE
    while due <= now:
        gap = min(gap * 2, LONGEST_GAP)
        due += gap
    return due


def has_started(job: JobFacts) -> bool:
    return (job.ready or 0) > 0 or job.pod_started


def waiting_for(job: JobFacts) -> str:
    """What the Pod waits for, in words (for a message)."""
    if job.waiting_reason and job.waiting_message:
        return f"{job.waiting_message} ({job.waiting_reason})"
    if job.waiting_reason == "ContainerCreating":
        # A volume that cannot be mounted (a missing Secret or ConfigMap) keeps it here; the
        # kubelet says so only in an Event of the Pod.
        return (
            "ContainerCreating (a volume may fail to mount: kubectl describe pod -l "
            f"job-name={job.name} says why)"
        )
    if job.waiting_reason:
        return job.waiting_reason
    return f"no Pod of Job {job.name} is running (see kubectl describe job {job.name})"
