"""Drive an external OCI runtime binary (runc or crun) through its command line.

The monitor calls this backend exactly like the builtin one. Errors come from the runtime's
`--log` file (JSON lines), so the container's own stderr pipe never has to be parsed. With a
terminal the runtime allocates the pty inside the container and hands its master over a
`--console-socket` (SCM_RIGHTS); the monitor takes it with `take_console`.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time

from dockyard.runtime.base import RuntimeFailure, Stdio

CONSOLE_TIMEOUT = 30.0
CGROUP_ROOT = "/sys/fs/cgroup"
UNIX_PATH_MAX = 100  # sun_path holds 108 bytes; keep a margin
SHORT_SCRATCH_ROOT = "/tmp"  # console sockets go here when the state root's path is too long


def exit_code_for(message: str) -> int:
    """docker's mapping of a runtime's exec error to the container's exit code."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "exec format error" in lowered or "is a directory" in lowered:
        return 126
    return 125


class OCICliRuntime:
    """OCIRuntime over `runc`/`crun`; `state_root` is passed as their `--root`."""

    def __init__(self, binary: str, state_root: str) -> None:
        self.binary = binary  # looked up in PATH by subprocess
        self.name = os.path.basename(binary)
        self.state_root = state_root
        self._consoles: dict[str, int] = {}
        self._memory_cgroups: dict[str, str] = {}

    # ------------------------------------------------------------------------- lifecycle

    def create(self, container_id: str, bundle: str, stdio: Stdio) -> int:
        """`<runtime> create`; returns the init's pid (a child of ours once the runtime exits)."""
        pid = self._start_process("create", ["--bundle", bundle], container_id, stdio)
        cgroup = _memory_cgroup_dir(pid)
        if cgroup:
            self._memory_cgroups[container_id] = cgroup
        return pid

    def exec_process(self, container_id: str, process: dict, stdio: Stdio) -> int:
        """`<runtime> exec --detach --process`: start `process` (an OCI process object) in the
        running container; returns its host pid (a child of ours, the caller being a subreaper).
        With a terminal, its pty master is then available from `take_console`."""
        return self._start_process("exec", ["--detach"], container_id, stdio, process)

    def _start_process(
        self, verb: str, extra: list[str], container_id: str, stdio: Stdio, process: dict | None = None
    ) -> int:
        """Run `create` or `exec` with our stdio (or a console socket) and return the pid it wrote."""
        work = self._scratch_dir(verb)
        master = None
        try:
            log = os.path.join(work, "log.json")
            pid_file = os.path.join(work, f"{verb}.pid")
            args = [verb, *extra, "--pid-file", pid_file]
            if process is not None:
                process_file = os.path.join(work, "process.json")
                with open(process_file, "w") as f:
                    json.dump(process, f)
                args += ["--process", process_file]
            if stdio.terminal:
                master, rc = self._run_with_console(args, container_id, log, work)
            else:
                rc = subprocess.Popen(
                    self._command(log, [*args, container_id]),
                    stdin=stdio.stdin if stdio.stdin is not None else subprocess.DEVNULL,
                    stdout=stdio.stdout,
                    stderr=stdio.stderr,
                ).wait()
            if rc != 0:
                if master is not None:
                    os.close(master)
                if verb == "create":
                    self._force_delete(container_id)
                raise self._failure(verb, log, "")
            with open(pid_file) as f:
                pid = int(f.read().strip())
        finally:
            _remove_scratch(work)
        if master is not None:
            self._consoles[container_id] = master
        return pid

    def take_console(self, container_id: str) -> int | None:
        """The pty master received by the last terminal create or exec; the caller owns it."""
        return self._consoles.pop(container_id, None)

    def start(self, container_id: str) -> None:
        """`<runtime> start`: the init execs the user process."""
        self._run("start", [container_id])

    def kill(self, container_id: str, signal: int) -> None:
        """`<runtime> kill ID SIGNAL`."""
        self._run("kill", [container_id, str(signal)])

    def delete(self, container_id: str) -> None:
        """`<runtime> delete --force`; a container the runtime no longer knows is fine."""
        master = self._consoles.pop(container_id, None)
        if master is not None:
            os.close(master)
        self._memory_cgroups.pop(container_id, None)
        self._force_delete(container_id)

    def oom_killed(self, container_id: str) -> bool:
        """Whether the kernel OOM-killed a process of the container's memory cgroup.

        Call after the init exited and before `delete` (which removes the cgroup)."""
        cgroup = self._memory_cgroups.get(container_id)
        return bool(cgroup) and _oom_kill_count(cgroup) > 0

    # ------------------------------------------------------------------------- helpers

    def _command(self, log: str | None, args: list[str]) -> list[str]:
        head = [self.binary, "--root", self.state_root]
        if log:
            head += ["--log", log, "--log-format", "json"]
        return head + args

    def _run(self, op: str, args: list[str]) -> None:
        work = self._scratch_dir(op)
        try:
            log = os.path.join(work, "log.json")
            proc = subprocess.run(
                self._command(log, [op, *args]),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                raise self._failure(op, log, proc.stderr.decode(errors="replace"))
        finally:
            _remove_scratch(work)

    def _scratch_dir(self, op: str) -> str:
        """A private directory for one call's log, pid file and console socket."""
        os.makedirs(self.state_root, mode=0o700, exist_ok=True)
        return _private_dir(self.state_root, op)

    def _force_delete(self, container_id: str) -> None:
        subprocess.run(
            self._command(None, ["delete", "--force", container_id]),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )

    def _run_with_console(self, args: list[str], container_id: str, log: str, work: str) -> tuple[int | None, int]:
        """Run create/exec while accepting the pty master the runtime sends on a console socket."""
        console_dir = work
        if len(os.fsencode(os.path.join(work, "console.sock"))) >= UNIX_PATH_MAX:
            console_dir = _private_dir(SHORT_SCRATCH_ROOT, "console")  # sun_path is 108 bytes
        console = os.path.join(console_dir, "console.sock")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
                listener.bind(console)
                listener.listen(1)
                proc = subprocess.Popen(
                    self._command(log, [*args, "--console-socket", console, container_id]),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                try:
                    master = _receive_console(listener, proc)
                finally:
                    rc = proc.wait()
                return master, rc
        finally:
            if console_dir != work:
                _remove_scratch(console_dir)

    def _failure(self, op: str, log: str, stderr: str) -> RuntimeFailure:
        message = _last_error(log) or stderr.strip() or f"{self.name} {op} failed"
        return RuntimeFailure(f"OCI runtime {op} failed: {message}", exit_code_for(message))


def _private_dir(parent: str, op: str) -> str:
    """A new 0700 directory nobody else can have prepared (mkdir fails if the name exists).

    (tempfile/shutil are avoided: they double the monitor's import footprint.)"""
    path = os.path.join(parent, f".dockyard-{op}-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(path, 0o700)
    return path


def _remove_scratch(path: str) -> None:
    """Remove a scratch directory (flat: only files the runtime and we put there)."""
    with os.scandir(path) as entries:
        for entry in entries:
            os.unlink(entry.path)
    os.rmdir(path)


def _receive_console(listener: socket.socket, proc: subprocess.Popen[bytes]) -> int | None:
    """Accept the runtime's console-socket connection and take the fd it sends."""
    waited = 0.0
    while waited < CONSOLE_TIMEOUT:
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            if not fds:
                return None
            os.set_inheritable(fds[0], False)
            return fds[0]
        if proc.poll() is not None:
            return None
        waited += 0.05
    proc.kill()
    return None


def _last_error(log: str) -> str:
    """The last error message of a runtime's JSON log (runc and crun both write `msg`)."""
    try:
        with open(log, "rb") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return ""
    message = ""
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
            message = str(entry["msg"])
    return message


def _memory_cgroup_dir(pid: int) -> str:
    """The memory cgroup directory of `pid` (v1 memory controller or the v2 unified tree)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    unified = ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return os.path.join(CGROUP_ROOT, "memory", path.lstrip("/"))
        if controllers == "":
            unified = os.path.join(CGROUP_ROOT, path.lstrip("/"))
    return unified if unified and os.path.exists(os.path.join(unified, "memory.events")) else ""


def _oom_kill_count(cgroup: str) -> int:
    """The `oom_kill` counter: memory.events (v2) or memory.oom_control (v1, kernel ≥ 4.13)."""
    for name in ("memory.events", "memory.oom_control"):
        try:
            with open(os.path.join(cgroup, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0
