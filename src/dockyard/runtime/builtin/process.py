"""The last steps before exec, shared by a container's init and `docker exec` processes:
stdio, session/terminal, rlimits, user and groups, capabilities, no_new_privs, cwd, PATH lookup.

Runs in a forked child: no threads, no logging; failures raise ExecError, which the caller
reports through its sync pipe as a RuntimeFailure with docker's wording and exit code.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import stat

from dockyard.runtime.builtin import caps, linux
from dockyard.runtime.seccomp import CompiledFilter
from dockyard.runtime.user import lookup_home

# How docker reports a failed container start (daemon/start.go wraps the runtime's error).
_DOCKER_PREFIX = (
    "failed to create task for container: failed to create shim task: OCI runtime create failed: "
    "builtin runtime create failed: unable to start container process: "
)


class ExecError(Exception):
    """A process could not be started; `code` follows docker (127 missing, 126 not executable)."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def docker_message(detail: str) -> str:
    """The text `docker run` prints for a runtime start failure."""
    return f"{_DOCKER_PREFIX}{detail}: unknown"


def install_stdio(stdin: int | None, stdout: int, stderr: int) -> None:
    """Make the given descriptors 0, 1, 2 (stdin /dev/null when absent), robust to overlaps."""
    if stdin is None:
        stdin = os.open("/dev/null", os.O_RDONLY)
    high = [os.dup(fd) for fd in (stdin, stdout, stderr)]  # dup first: the targets may overlap
    for target, fd in enumerate(high):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def reset_signals() -> None:
    """Python ignores SIGPIPE (and more); ignored dispositions survive exec, so restore defaults."""
    for sig in range(1, signal.NSIG):
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def new_session(terminal: bool) -> None:
    """Own session; with a terminal, stdin (the pty slave) becomes the controlling tty."""
    os.setsid()
    if terminal:
        linux.ioctl_int(0, linux.TIOCSCTTY, 0)


def apply_rlimits(rlimits: list[dict]) -> None:
    for limit in rlimits:
        number = getattr(resource, limit["type"], None)
        if number is None:
            raise ExecError(f"unknown rlimit {limit['type']}")
        try:
            resource.setrlimit(number, (limit["soft"], limit["hard"]))
        except (ValueError, OSError) as exc:
            # Like runc: a limit that cannot be applied is an error, never silently lowered.
            raise ExecError(f"error setting rlimit type {number}: operation not permitted") from exc


def switch_user(process: dict, seccomp_filter: CompiledFilter | None = None) -> None:
    """setgroups/setgid/setuid while keeping capabilities, then set the spec's capability sets.
    Without no_new_privs loading a seccomp filter needs CAP_SYS_ADMIN, so (as runc) it is loaded
    here, before capabilities are dropped; otherwise `execute` loads it right before execve."""
    user = process.get("user") or {}
    capabilities = process.get("capabilities")
    if seccomp_filter is not None and not process.get("noNewPrivileges"):
        load_seccomp(seccomp_filter)
    if capabilities is not None:
        caps.apply_bounding(capabilities)
    linux.prctl(linux.PR_SET_KEEPCAPS, 1)
    os.setgroups(list(user.get("additionalGids") or []))
    os.setgid(int(user.get("gid", 0)))
    os.setuid(int(user.get("uid", 0)))
    linux.prctl(linux.PR_SET_KEEPCAPS, 0)
    if capabilities is not None:
        caps.apply_process_caps(capabilities)
    if process.get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)


def load_seccomp(seccomp_filter: CompiledFilter) -> None:
    """Install the filter once; runc's wording on failure."""
    if seccomp_filter.loaded:
        return
    try:
        seccomp_filter.load()
    except OSError as exc:
        raise ExecError(f"error loading seccomp filter into kernel: {exc.strerror.lower()}") from None


def environment(process: dict) -> dict[str, str]:
    """The process environment; HOME from the container's passwd when unset (as runc does)."""
    env: dict[str, str] = {}
    for entry in process.get("env") or []:
        key, _, value = entry.partition("=")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = lookup_home("/", int((process.get("user") or {}).get("uid", 0))) or "/"
    return env


def enter_cwd(cwd: str, uid: int, gid: int) -> None:
    """chdir to cwd; a missing WorkingDir is created owned by the user, as docker does."""
    if not os.path.isdir(cwd):
        os.makedirs(cwd, mode=0o755, exist_ok=True)
        os.chown(cwd, uid, gid)
    os.chdir(cwd)


def look_path(name: str, env: dict[str, str]) -> str:
    """Go's exec.LookPath in the container: docker's messages and exit codes."""
    if "/" in name:
        try:
            st = os.stat(name)
        except OSError as exc:
            raise ExecError(f'exec: "{name}": stat {name}: {exc.strerror.lower()}', 127) from None
        if stat.S_ISDIR(st.st_mode):
            raise ExecError(f'exec: "{name}": is a directory', 126)
        if not st.st_mode & 0o111:
            raise ExecError(f'exec: "{name}": permission denied', 126)
        return name
    for directory in (env.get("PATH") or "").split(":"):
        candidate = os.path.join(directory or ".", name)
        with contextlib.suppress(OSError):
            st = os.stat(candidate)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                return candidate
    raise ExecError(f'exec: "{name}": executable file not found in $PATH', 127)


def mark_fds_cloexec() -> None:
    """No descriptor beyond stdio may leak into the container."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, False)


def prepare(process: dict, seccomp_filter: CompiledFilter | None = None) -> tuple[str, list[str], dict[str, str]]:
    """Everything between the namespace setup and exec: returns (path, argv, env)."""
    apply_rlimits(process.get("rlimits") or [])
    if process.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(process["oomScoreAdj"]))
    user = process.get("user") or {}
    enter_cwd(process.get("cwd") or "/", int(user.get("uid", 0)), int(user.get("gid", 0)))
    env = environment(process)
    switch_user(process, seccomp_filter)
    args = process.get("args") or []
    if not args:
        raise ExecError("args must not be empty")
    path = look_path(args[0], env)
    return path, args, env


def execute(path: str, args: list[str], env: dict[str, str], seccomp_filter: CompiledFilter | None = None) -> None:
    """execve; failures map to docker's 126/127. A seccomp filter not loaded yet is the last step."""
    mark_fds_cloexec()
    reset_signals()
    if seccomp_filter is not None:
        load_seccomp(seccomp_filter)
    try:
        os.execve(path, args, env)
    except OSError as exc:
        code = 127 if exc.errno == 2 else 126 if exc.errno in (13, 21, 8) else 125
        raise ExecError(f'exec: "{args[0]}": {exc.strerror.lower()}', code) from None
