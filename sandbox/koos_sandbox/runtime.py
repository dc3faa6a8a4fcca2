"""Container runtimes of the kubelet stand-in: local processes, or outcomes a test scripts.

A runtime runs one container start and returns how it ended. It reports the moment the
container starts (`started`) or why it cannot (`waiting`), streams output to `PodLogs`, and
stops when `Launch.stop` is set: SIGTERM to the whole process group, SIGKILL after the grace
period, as the kubelet does on delete, eviction or deadline.

- `LocalRuntime` runs `command + args` (or an image entrypoint registered with
  `entrypoints`) with the container's environment and working dir. The
  `terminationMessagePath` is mapped to a temporary file: every occurrence of the path in the
  env values, command and args is replaced by the file's path, and the file is read when the
  container ends. A container without a command cannot run (there are no images here): it
  ends at once with reason `StartError`, exit code 128, as a real failed exec does.
- `ScriptedRuntime` ends containers as rules say (default: instant success, no logs).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fnmatch
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from koos_sandbox.logs import PodLogs

Obj = dict[str, Any]
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
NOT_LOCATED = "The container could not be located when the pod was deleted"


@dataclass
class Launch:
    """One start of one container."""

    namespace: str
    pod: Obj
    container: Obj
    env: dict[str, str]  # the container's resolved `env`/`envFrom`, nothing from this host
    logs: PodLogs
    stop: asyncio.Event
    grace: float = 1.0
    # What the node adds under the container's env (service variables, KUBECONFIG); the
    # container's own `env` wins on a clash, as a kubelet's service variables lose to it.
    base_env: dict[str, str] = field(default_factory=dict)

    @property
    def pod_name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def name(self) -> str:
        return str(self.container.get("name", ""))


@dataclass
class Outcome:
    exit_code: int
    reason: str = ""  # "" means Completed (exit 0) or Error
    message: str = ""  # the termination message as read, before truncation or fallback
    started: bool = True  # False: the container never ran (exec failed, image never pulled)


class Runtime(Protocol):
    async def run(
        self, launch: Launch, started: Callable[[], None], waiting: Callable[[str, str], None]
    ) -> Outcome: ...

    def close(self) -> None: ...


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined names are replaced, `$$` escapes a `$`."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2 : end]
            out.append(env[name] if name in env else text[i : end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def runtime_refusal(env: dict[str, str]) -> str:
    """Why the OCI runtime would refuse to start a container with this environment, or "".
    runc checks every variable when the container starts (after the API server and the
    kubelet accepted it) and refuses a NUL byte; containerd reports StartError, exit 128.
    The value is left out of the message: it may be a Secret's."""
    for key, value in env.items():
        if "\x00" in key or "\x00" in value:
            return (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                "create failed: runc create failed: unable to start container process: error "
                f'during container init: invalid environment variable "{key.split(chr(0))[0]}": '
                "contains nul byte (\\x00): unknown"
            )
    return ""


class LocalRuntime:
    """`root`: where containers' working folders go (default: a new temporary folder);
    removed by `close()`."""

    def __init__(
        self, *, entrypoints: dict[str, list[str]] | None = None, root: Path | None = None
    ) -> None:
        self.entrypoints = dict(entrypoints or {})
        if root is None:
            root = Path(tempfile.mkdtemp(prefix="koos-kubelet-"))
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._serial = 0

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _entrypoint(self, image: str) -> list[str]:
        for key in (image, image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else ""):
            if key and key in self.entrypoints:
                return list(self.entrypoints[key])
        return []

    async def run(
        self, launch: Launch, started: Callable[[], None], waiting: Callable[[str, str], None]
    ) -> Outcome:
        c = launch.container
        self._serial += 1
        home = self.root / f"{launch.namespace}_{launch.pod_name}_{launch.name}_{self._serial}"
        home.mkdir(parents=True)
        message_file = home / "termination-log"
        message_file.touch()
        message_path = c.get("terminationMessagePath") or "/dev/termination-log"

        def mapped(value: str) -> str:
            return value.replace(message_path, str(message_file))

        env = {**launch.base_env, **{k: mapped(v) for k, v in launch.env.items()}}
        command = [mapped(str(x)) for x in c.get("command") or []]
        command = command or self._entrypoint(str(c.get("image", "")))
        argv = [expand(x, env) for x in command + [mapped(str(a)) for a in c.get("args") or []]]
        if not command:
            return Outcome(
                128,
                "StartError",
                (
                    f"sandbox local mode: container {launch.name!r} has no command and the "
                    f"entrypoint of image {c.get('image', '')!r} is unknown here; set `command`"
                ),
                started=False,
            )
        cwd = _workdir(c.get("workingDir"), home)
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", str(home)),
            "HOSTNAME": str(launch.pod.get("spec", {}).get("hostname") or launch.pod_name),
            **env,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=full_env,
                start_new_session=True,
            )
        except OSError as error:
            return Outcome(
                128,
                "StartError",
                (
                    "failed to create containerd task: failed to create shim task: OCI runtime "
                    f'create failed: unable to start container process: exec: "{argv[0]}": '
                    f"{error.strerror or error}: unknown"
                ),
                started=False,
            )
        launch.logs.start(launch.namespace, launch.pod_name, launch.name)
        started()
        pumps = [asyncio.create_task(self._pump(launch, s)) for s in (proc.stdout, proc.stderr)]
        try:
            exited = asyncio.create_task(proc.wait())
            stopping = asyncio.create_task(launch.stop.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not exited.done():
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(asyncio.shield(exited), launch.grace)
                except TimeoutError:
                    _signal_group(proc.pid, signal.SIGKILL)
                await exited
            # The container's main process is gone: so is everything else it started.
            _signal_group(proc.pid, signal.SIGKILL)
            await asyncio.gather(*pumps)
        finally:
            if proc.returncode is None:
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
            for pump in pumps:
                pump.cancel()
            launch.logs.finish(launch.namespace, launch.pod_name, launch.name)
        code = proc.returncode if proc.returncode is not None else 137
        code = code if code >= 0 else 128 - code
        return Outcome(code, message=_read_and_clean(message_file, home))

    @staticmethod
    async def _pump(launch: Launch, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := await stream.read(65536):
            if text := decoder.decode(chunk):
                launch.logs.append(launch.namespace, launch.pod_name, launch.name, text)
        if tail := decoder.decode(b"", final=True):
            launch.logs.append(launch.namespace, launch.pod_name, launch.name, tail)


def _read_and_clean(message_file: Path, home: Path) -> str:
    """The termination message (as much as the kubelet reads), then the container's files go."""
    try:
        with message_file.open("rb") as f:
            return f.read(4096).decode("utf-8", "replace")
    except OSError:
        return ""
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _workdir(wanted: str | None, home: Path) -> str:
    return wanted if wanted and os.path.isdir(wanted) else str(home)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class ScriptRule:
    """How matching containers end. `pattern` is a shell pattern on the Job name (label
    `batch.kubernetes.io/job-name`) or the Pod name; `labels` must all be on the Pod."""

    pattern: str | None = None
    labels: dict[str, str] | None = None
    container: str | None = None
    exit_code: int = 0
    message: str = ""
    logs: str = ""
    duration: float = 0.0
    pending: bool = False
    reason: str = ""  # e.g. OOMKilled; "" means Completed/Error from the exit code
    times: int | None = None  # apply to this many container starts, then step aside
    used: int = field(default=0, compare=False)

    def matches(self, pod: Obj, container: str) -> bool:
        if self.times is not None and self.used >= self.times:
            return False
        if self.container is not None and self.container != container:
            return False
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if self.labels and any(labels.get(k) != v for k, v in self.labels.items()):
            return False
        if self.pattern is None:
            return True
        names = [meta.get("name", ""), labels.get(JOB_NAME_LABEL, "")]
        return any(n and fnmatch.fnmatchcase(n, self.pattern) for n in names)


class ScriptedRuntime:
    def __init__(self) -> None:
        self.rules: list[ScriptRule] = []

    def close(self) -> None:
        pass

    def add(self, rule: ScriptRule) -> ScriptRule:
        self.rules.append(rule)
        return rule

    def rule_for(self, pod: Obj, container: str) -> ScriptRule:
        for rule in reversed(self.rules):
            if rule.matches(pod, container):
                rule.used += 1
                return rule
        return ScriptRule()

    async def run(
        self, launch: Launch, started: Callable[[], None], waiting: Callable[[str, str], None]
    ) -> Outcome:
        rule = self.rule_for(launch.pod, launch.name)
        image = launch.container.get("image", "")
        if rule.pending:
            waiting("ErrImagePull", rule.message or f'failed to pull image "{image}": not found')
            waiting("ImagePullBackOff", f'Back-off pulling image "{image}"')
            await launch.stop.wait()
            return Outcome(137, "ContainerStatusUnknown", NOT_LOCATED, started=False)
        launch.logs.start(launch.namespace, launch.pod_name, launch.name)
        started()
        try:
            if rule.logs:
                launch.logs.append(launch.namespace, launch.pod_name, launch.name, rule.logs)
            if rule.duration > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(launch.stop.wait(), rule.duration)
            elif not launch.stop.is_set():
                await asyncio.sleep(0)
            if launch.stop.is_set():
                return Outcome(143)  # ended by SIGTERM
            return Outcome(rule.exit_code, rule.reason, rule.message)
        finally:
            launch.logs.finish(launch.namespace, launch.pod_name, launch.name)
