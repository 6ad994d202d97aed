"""The contract every OCI runtime backend fulfils (builtin, runc, crun).

The monitor process drives a backend through create → start → (wait) → delete, exactly the
OCI runtime lifecycle, so the same bundle runs under any backend.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol
else:  # the contract is for the type checker; at run time `typing` stays out of the monitor
    Protocol = object


class RuntimeFailure(Exception):
    """The runtime could not create or start the container.

    `exit_code` follows docker: 127 executable not found, 126 not executable/permission
    denied, 125 anything else. `message` is shown to the user verbatim.
    """

    def __init__(self, message: str, exit_code: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class Stdio:
    """File descriptors (in the calling process) the container's init gets as 0, 1, 2.

    When `terminal` is true, all three are the slave side of a pty the caller allocated
    and the init makes it its controlling terminal. A plain class, not a dataclass: the
    monitor imports this module and `dataclasses` costs it megabytes of memory.
    """

    __slots__ = ("stderr", "stdin", "stdout", "terminal")

    def __init__(self, stdin: int | None, stdout: int, stderr: int, terminal: bool = False) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.terminal = terminal

    def __repr__(self) -> str:
        return f"Stdio(stdin={self.stdin}, stdout={self.stdout}, stderr={self.stderr}, terminal={self.terminal})"


class OCIRuntime(Protocol):
    """One OCI runtime backend. `state_root` is where it keeps per-container state."""

    name: str

    def create(self, container_id: str, bundle: str, stdio: Stdio) -> int:
        """Set the container up (namespaces, mounts, cgroup) and return the host pid of its
        init, which waits for `start` before exec'ing the user process.

        The caller must be a child subreaper (PR_SET_CHILD_SUBREAPER) so it can reap the init."""
        ...

    def start(self, container_id: str) -> None:
        """Let the init exec the user process; raise RuntimeFailure if the exec fails."""
        ...

    def kill(self, container_id: str, signal: int) -> None:
        """Deliver `signal` to the container's init."""
        ...

    def delete(self, container_id: str) -> None:
        """Release what create made (cgroup, state files) once the init has exited. Idempotent."""
        ...
