"""The controls tests drive the Job controller with: scripted outcomes, evictions, lost nodes.

`JobControls` is mixed into `JobController`, so a test reaches them as `sandbox.jobs.script(...)`.
Each control acts as the real cluster would make it happen (a `script()` rule decides how a
container ends, `evict_pod` goes through the Eviction API's steps, `lose_node` through the
node lifecycle and taint manager's), and the controller and kubelet then react to the
resulting store events exactly as to any other.

Invariant: controls only change the runtime's rules or the store through the kubelet; none
touches the controller's queue or counts directly.
"""

from __future__ import annotations

from koos_sandbox.kubelet import StoreNodes
from koos_sandbox.nodes import DEFAULT_NODE
from koos_sandbox.runtime import Runtime, ScriptedRuntime, ScriptRule


class JobControls:
    """Test controls of the Job controller (and of the kubelet stand-in behind it)."""

    runtime: Runtime | None
    kubelet: StoreNodes

    def script(
        self,
        pattern: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        container: str | None = None,
        exit_code: int = 0,
        message: str = "",
        logs: str = "",
        duration: float = 0.0,
        pending: bool = False,
        reason: str = "",
        times: int | None = None,
    ) -> ScriptRule:
        """Decide how matching containers end (scripted mode); the last added matching rule
        wins; without one a container succeeds at once with no logs. `pattern` is a shell
        pattern on the Job name or the Pod name, `labels` must all be on the Pod,
        `container` limits the rule to one container, `times` to that many container
        starts. `pending` keeps the container waiting in ErrImagePull/ImagePullBackOff
        until the Pod is deleted; `duration` (seconds, on the event loop) keeps it Running."""
        if not isinstance(self.runtime, ScriptedRuntime):
            raise RuntimeError("script() needs the sandbox's jobs mode 'scripted'")
        return self.runtime.add(
            ScriptRule(
                pattern,
                labels,
                container,
                exit_code,
                message,
                logs,
                duration,
                pending,
                reason,
                times,
            )
        )

    def clear_scripts(self) -> None:
        """Forget every `script()` rule: containers succeed at once again."""
        if isinstance(self.runtime, ScriptedRuntime):
            self.runtime.rules.clear()

    def evict_pod(self, namespace: str, name: str) -> None:
        """As the Eviction API does: condition DisruptionTarget (EvictionByEvictionAPI), then
        delete; the kubelet stops the containers and reports the Pod Failed."""
        self.kubelet.evict(namespace, name)

    def delete_pod(self, namespace: str, name: str) -> None:
        """A plain delete (the Job's finalizer keeps the Pod until it is counted)."""
        self.kubelet.delete(namespace, name)

    def lose_node(self, name: str = DEFAULT_NODE) -> None:
        """The Node goes NotReady (conditions Unknown, unreachable taints); its Pods get
        DisruptionTarget (DeletionByTaintManager), phase Failed and are deleted; their
        processes are killed. New Pods stay unschedulable until `restore_node`."""
        self.kubelet.set_node_ready(name, False)

    def restore_node(self, name: str = DEFAULT_NODE) -> None:
        """The Node is Ready again; Pods waiting to be scheduled are bound to it."""
        self.kubelet.set_node_ready(name, True)
