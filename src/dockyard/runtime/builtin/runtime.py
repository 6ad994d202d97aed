"""dockyard's builtin OCI runtime: executes a bundle's config.json with real namespaces.

Process layout (as runc): the caller (the monitor, a child subreaper) forks an intermediate
process that joins the cgroup and enters/creates the namespaces, then forks the container init
and exits; the init is reparented to the caller, which reaps it. The init sets up the root
filesystem and the process, reports "ready" on a sync pipe, then blocks opening the exec FIFO in
the state directory until `start` opens its other end. Exec failures travel back through that
FIFO (its write end is close-on-exec, so a successful exec reads as plain EOF).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal as signals
import time
from collections.abc import Callable

from dockyard.runtime.base import RuntimeFailure, Stdio
from dockyard.runtime.builtin import linux, mounts, process
from dockyard.runtime.cgroups import Cgroup, CgroupV1, open_cgroup
from dockyard.runtime.seccomp import CompiledFilter, SeccompError
from dockyard.runtime.seccomp import prepare as compile_seccomp
from dockyard.util.fs import read_json, write_json

TYPE_CHECKING = False  # the zygote preloads this module: typing stays out of every monitor's memory
if TYPE_CHECKING:
    from typing import NoReturn

OCI_VERSION = "1.2.0"
_READY_TIMEOUT = 60.0
_START_TIMEOUT = 60.0
# Devices runc always allows on top of the spec's rules (ptys, /dev/full, tun, mknod of anything).
_IMPLICIT_DEVICE_RULES = [
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
]


def _remove_tree(path: str) -> None:
    """rmtree, with shutil (and its compression modules) imported only when state is removed."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _send(fd: int, message: dict) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")


def _run_child(body: Callable[[], None], report_fd: int) -> NoReturn:
    """Run `body` in a forked child, report any failure on `report_fd`, never return."""
    code = 0
    try:
        body()
    except process.ExecError as exc:
        code = 1
        with contextlib.suppress(BaseException):
            _send(report_fd, {"error": exc.message, "code": exc.code})
    except BaseException as exc:
        code = 1
        with contextlib.suppress(BaseException):
            _send(report_fd, {"error": f"error during container init: {exc}", "code": 125})
    finally:
        os._exit(code)


def _read_messages(fd: int, until: Callable[[dict], bool], timeout: float) -> list[dict]:
    """JSON lines from a sync pipe until `until(message)` holds, EOF, or the timeout."""
    messages: list[dict] = []
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            messages.append({"error": "timed out waiting for the container init", "code": 125})
            return messages
        chunk = os.read(fd, 65536)
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            messages.append(json.loads(line))
            if until(messages[-1]):
                return messages
        if not chunk:
            return messages


def _seccomp_filter(spec: dict) -> CompiledFilter | None:
    """The spec's linux.seccomp compiled before any fork, so a bad profile fails create cleanly."""
    try:
        return compile_seccomp((spec.get("linux") or {}).get("seccomp"))
    except SeccompError as exc:
        raise RuntimeFailure(process.docker_message(f"error loading seccomp filter: {exc}")) from None


def _first_error(messages: list[dict]) -> dict | None:
    return next((m for m in messages if "error" in m), None)


def proc_start_time(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in ticks) of a process, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[19])


def _alive(pid: int, start_time: int | None) -> bool:
    info = proc_start_time(pid)
    return info is not None and info[0] not in ("Z", "X") and (start_time is None or info[1] == start_time)


def _kill_and_reap(pid: int) -> None:
    """Dispose of a half-started child that was reparented to us (the caller is a subreaper)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signals.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _cgroup_sources(cgroup: Cgroup) -> list[tuple[str, str]]:
    """What to bind at the container's /sys/fs/cgroup: its own directory of each hierarchy."""
    if isinstance(cgroup, CgroupV1):
        seen: dict[str, str] = {}
        for mountpoint in cgroup.mounts.values():
            seen.setdefault(os.path.basename(mountpoint), mountpoint + cgroup.path)
        return sorted(seen.items())
    return [("", cgroup.dir)]  # type: ignore[attr-defined]


class BuiltinRuntime:
    """The OCIRuntime backend that needs no external binary."""

    name = "builtin"
    # All state lives in state_root: `create` may run in a short-lived forked helper, which keeps
    # the monitor's own memory (copy-on-write pages shared with the zygote) from being touched.
    stateless = True

    def __init__(self, state_root: str) -> None:
        self.state_root = state_root
        os.makedirs(state_root, mode=0o700, exist_ok=True)

    # --- state -----------------------------------------------------------------------------

    def _dir(self, container_id: str) -> str:
        if not container_id or "/" in container_id or container_id in (".", ".."):
            raise RuntimeFailure(f"invalid container id {container_id!r}")
        return os.path.join(self.state_root, container_id)

    def _load(self, container_id: str) -> dict:
        state = read_json(os.path.join(self._dir(container_id), "state.json"))
        if state is None:
            raise RuntimeFailure(f"container {container_id} does not exist")
        return state

    def _save(self, state: dict) -> None:
        write_json(os.path.join(self._dir(state["id"]), "state.json"), state, mode=0o600, durable=False)

    def state(self, container_id: str) -> dict:
        """The OCI state document; status "stopped" once the init is gone."""
        state = self._load(container_id)
        if state["status"] in ("created", "running") and not _alive(state["pid"], state.get("pidStartTime")):
            state["status"] = "stopped"
        return state

    # --- lifecycle -------------------------------------------------------------------------

    def create(self, container_id: str, bundle: str, stdio: Stdio) -> int:
        bundle = os.path.abspath(bundle)
        spec = read_json(os.path.join(bundle, "config.json"))
        if spec is None:
            raise RuntimeFailure(f"no config.json in bundle {bundle}")
        state_dir = self._dir(container_id)
        try:
            os.makedirs(state_dir, mode=0o700)
        except FileExistsError:
            raise RuntimeFailure(f"container with id {container_id} already exists") from None
        cgroups_path = (spec.get("linux") or {}).get("cgroupsPath") or f"/dockyard/{container_id}"
        cgroup = open_cgroup(cgroups_path)
        init_pid = None
        try:
            fifo = os.path.join(state_dir, "exec.fifo")
            os.mkfifo(fifo, 0o600)
            os.chmod(fifo, 0o622)  # the init may already run as the container user when it opens it
            cgroup.create()
            resources = dict((spec.get("linux") or {}).get("resources") or {})
            if resources.get("devices"):
                resources["devices"] = [*resources["devices"], *_IMPLICIT_DEVICE_RULES]
            cgroup.apply(resources)
            seccomp = _seccomp_filter(spec)
            if seccomp is not None:  # kept compiled for execs: compiling costs milliseconds each time
                write_json(
                    os.path.join(state_dir, "seccomp.json"),
                    {"program": seccomp.program.hex(), "flags": seccomp.flags},
                    mode=0o600,
                    durable=False,
                )
            init_pid = self._spawn_init(spec, bundle, fifo, cgroup, stdio, seccomp)
            self._save({
                "ociVersion": OCI_VERSION, "id": container_id, "status": "created", "pid": init_pid,
                "bundle": bundle, "annotations": spec.get("annotations") or {},
                "cgroupsPath": cgroups_path, "pidStartTime": (proc_start_time(init_pid) or ("", 0))[1],
            })  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                cgroup.remove()
            _remove_tree(state_dir)
            raise
        return init_pid

    def _spawn_init(
        self, spec: dict, bundle: str, fifo: str, cgroup: Cgroup, stdio: Stdio, seccomp: CompiledFilter | None
    ) -> int:
        read_fd, write_fd = os.pipe()
        try:
            child = os.fork()
            if child == 0:
                os.close(read_fd)
                _run_child(lambda: self._intermediate(spec, bundle, fifo, cgroup, stdio, seccomp, write_fd), write_fd)
            os.close(write_fd)
            write_fd = -1
            messages = _read_messages(read_fd, lambda m: "ready" in m or "error" in m, _READY_TIMEOUT)
            os.waitpid(child, 0)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        init_pid = next((m["pid"] for m in messages if "pid" in m), None)
        error = _first_error(messages)
        if error is None and not any("ready" in m for m in messages):
            error = {"error": "container init exited before it was ready", "code": 125}
        if error is not None:
            if init_pid is not None:
                _kill_and_reap(init_pid)
            raise RuntimeFailure(process.docker_message(error["error"]), error["code"])
        assert init_pid is not None
        return init_pid

    @staticmethod
    def _intermediate(
        spec: dict, bundle: str, fifo: str, cgroup: Cgroup, stdio: Stdio, seccomp: CompiledFilter | None, sync_fd: int
    ) -> None:
        """Join the cgroup, enter or create the namespaces, fork the init, report its pid."""
        cgroup.join()
        namespaces = (spec.get("linux") or {}).get("namespaces") or []
        join = [(ns, os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)) for ns in namespaces if ns.get("path")]
        for ns, fd in join:
            linux.setns(fd, linux.NAMESPACE_FLAGS[ns["type"]])
            os.close(fd)
        flags = 0
        for ns in namespaces:
            if not ns.get("path"):
                flags |= linux.NAMESPACE_FLAGS[ns["type"]]
        linux.unshare(flags)
        fresh = {ns["type"] for ns in namespaces if not ns.get("path")}
        init = os.fork()
        if init == 0:
            init = (spec, bundle, fifo, cgroup, stdio, seccomp, sync_fd, fresh)
            _run_child(lambda: _container_init(*init), sync_fd)
        _send(sync_fd, {"pid": init})

    def start(self, container_id: str) -> None:
        state = self._load(container_id)
        if state["status"] != "created":
            raise RuntimeFailure(f"cannot start a container that is {state['status']}")
        fifo = os.path.join(self._dir(container_id), "exec.fifo")
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            report = self._await_exec(fd, state)
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(fifo)
        if report:
            error = json.loads(report)
            state["status"] = "stopped"
            self._save(state)
            raise RuntimeFailure(process.docker_message(error["error"]), error["code"])
        state["status"] = "running"
        self._save(state)

    @staticmethod
    def _await_exec(fd: int, state: dict) -> bytes:
        """Bytes the init wrote to the exec FIFO before exec closed it (empty: exec succeeded)."""
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        data = b""
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if poller.poll(100):
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    return data
                data += chunk
            elif not _alive(state["pid"], state.get("pidStartTime")):
                raise RuntimeFailure("container init exited before start")
            elif time.monotonic() > deadline:
                raise RuntimeFailure("timed out waiting for the container init to exec")

    def kill(self, container_id: str, signal: int) -> None:
        state = self._load(container_id)
        if _alive(state["pid"], state.get("pidStartTime")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal)

    def delete(self, container_id: str) -> None:
        state_dir = self._dir(container_id)
        state = read_json(os.path.join(state_dir, "state.json"))
        if state is not None:
            open_cgroup(state["cgroupsPath"]).remove()
        _remove_tree(state_dir)

    # --- docker exec ---------------------------------------------------------------------

    def exec_process(self, container_id: str, process_spec: dict, stdio: Stdio) -> int:
        """Start `process_spec` (an OCI process object) inside a running container; returns its
        host pid. The caller, a subreaper, reaps it."""
        state = self._load(container_id)
        init = state["pid"]
        if not _alive(init, state.get("pidStartTime")):
            raise RuntimeFailure(f"container {container_id} is not running")
        cgroup = open_cgroup(state["cgroupsPath"])
        saved = read_json(os.path.join(self._dir(container_id), "seccomp.json"))
        if saved:
            seccomp: CompiledFilter | None = CompiledFilter(bytes.fromhex(saved["program"]), saved["flags"])
        else:
            seccomp = _seccomp_filter(read_json(os.path.join(state["bundle"], "config.json")) or {})
        read_fd, write_fd = os.pipe()
        try:
            child = os.fork()
            if child == 0:
                os.close(read_fd)
                _run_child(lambda: _exec_intermediate(init, cgroup, process_spec, stdio, seccomp, write_fd), write_fd)
            os.close(write_fd)
            write_fd = -1
            messages = _read_messages(read_fd, lambda m: False, _READY_TIMEOUT)
            os.waitpid(child, 0)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        error = _first_error(messages)
        pid = next((m["pid"] for m in messages if "pid" in m), None)
        if error is not None or pid is None:
            if pid is not None:
                _kill_and_reap(pid)  # a pid namespace cannot die while it holds an unreaped zombie
            error = error or {"error": "exec process exited before it started", "code": 125}
            raise RuntimeFailure(process.docker_message(error["error"]), error["code"])
        return pid


def _container_init(
    spec: dict,
    bundle: str,
    fifo: str,
    cgroup: Cgroup,
    stdio: Stdio,
    seccomp: CompiledFilter | None,
    sync_fd: int,
    fresh: set[str],
) -> None:
    """The container's pid 1 until exec: rootfs, hostname, network, process; then wait for start."""
    proc = spec.get("process") or {}
    process.install_stdio(stdio.stdin, stdio.stdout, stdio.stderr)
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    if "network" in fresh:
        linux.interface_up("lo")
    if "uts" in fresh:
        if spec.get("hostname"):
            linux.sethostname(spec["hostname"])
        if spec.get("domainname"):
            linux.setdomainname(spec["domainname"])
    rootfs = os.path.join(bundle, (spec.get("root") or {}).get("path") or "rootfs")
    mounts.setup_rootfs(os.path.realpath(rootfs), spec, _cgroup_sources(cgroup), 0 if proc.get("terminal") else None)
    mounts.finish_rootfs(spec)
    process.new_session(bool(proc.get("terminal")))
    path, args, env = process.prepare(proc, seccomp)  # loads the filter unless no_new_privs defers it
    _send(sync_fd, {"ready": True})
    os.close(sync_fd)
    exec_fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)  # blocks until start
    os.close(fifo_fd)
    try:
        process.execute(path, args, env, seccomp)
    except process.ExecError as exc:
        _send(exec_fd, {"error": exc.message, "code": exc.code})
        os._exit(exc.code)


def _exec_intermediate(
    init_pid: int, cgroup: Cgroup, proc: dict, stdio: Stdio, seccomp: CompiledFilter | None, sync_fd: int
) -> None:
    """Join the init's cgroup and namespaces (mount last), fork the exec process, report its pid."""
    cgroup.join()
    targets = []
    for ns_type, proc_name in linux.NAMESPACE_PROC_NAMES.items():
        theirs, ours = f"/proc/{init_pid}/ns/{proc_name}", f"/proc/self/ns/{proc_name}"
        with contextlib.suppress(FileNotFoundError):
            if os.stat(theirs).st_ino != os.stat(ours).st_ino:
                targets.append((ns_type, os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)))
    targets.sort(key=lambda t: (t[0] == "mount", t[0] != "user"))
    for ns_type, fd in targets:
        linux.setns(fd, linux.NAMESPACE_FLAGS[ns_type])
        os.close(fd)
    child = os.fork()
    if child == 0:
        _run_child(lambda: _exec_child(proc, stdio, seccomp), sync_fd)
    _send(sync_fd, {"pid": child})


def _exec_child(proc: dict, stdio: Stdio, seccomp: CompiledFilter | None) -> None:
    process.install_stdio(stdio.stdin, stdio.stdout, stdio.stderr)
    process.new_session(bool(proc.get("terminal")))
    path, args, env = process.prepare(proc, seccomp)
    process.execute(path, args, env, seccomp)
