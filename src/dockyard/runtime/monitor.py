"""The per-container monitor: `python -m dockyard.runtime.monitor --id ID --bundle DIR ...`.

One small process per container (what conmon / containerd-shim are for docker): it outlives
the daemon, is the parent (child subreaper) of the container's init, owns its stdio, writes
the json-file log, serves attach/start/wait/kill/resize/exec on `monitor.sock` (protocol in
docs/architecture.md), records `exit.json` and releases the runtime state. It runs once per
container, so it imports little (no asyncio, no argparse): selectors and non-blocking sockets.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable

from dockyard.runtime import frames
from dockyard.runtime.base import RuntimeFailure, Stdio

TYPE_CHECKING = False  # typing stays out of every monitor's memory
if TYPE_CHECKING:
    from typing import Any

SOCKET_NAME = "monitor.sock"
PID_NAME = "monitor.pid"
EXIT_NAME = "exit.json"
READ_SIZE = 65536
CLIENT_BUFFER_LIMIT = 4 << 20  # a client this far behind is dropped, never waited for
STDIN_HIGH_WATER = 1 << 20  # stop reading stdin frames until the container catches up
DRAIN_TIMEOUT = 2.0  # after the init exits: wait this long for stragglers holding stdout
FLUSH_TIMEOUT = 5.0  # at the end: time given to clients to take their last bytes
PR_SET_CHILD_SUBREAPER = 36
DEFAULT_RUNTIME_ROOT = "/run/dockyard/{runtime}"
EOT = b"\x04"  # ^D: how a terminal's stdin reaches EOF
TIOCSPTLCK = 0x40045431  # unlock a pty's slave
TIOCGPTPEER = 0x5441  # open a pty's slave from its master (no path lookup)

_VALUE_OPTIONS = {"id", "bundle", "state-dir", "runtime", "runtime-root", "log", "log-max-size", "log-max-files"}
_FLAG_OPTIONS = {"tty", "stdin", "stdin-once"}


class UsageError(Exception):
    """Bad command line."""


def parse_args(argv: list[str]) -> dict[str, Any]:
    """`--name value`, `--name=value` and boolean `--flag`s into a dict keyed by name."""
    opts: dict[str, Any] = {flag: False for flag in _FLAG_OPTIONS}
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name not in _VALUE_OPTIONS | _FLAG_OPTIONS:
            raise UsageError(f"unknown argument {arg!r}")
        if name in _FLAG_OPTIONS:
            opts[name] = True
            continue
        if not eq:
            value = next(args, None)
            if value is None:
                raise UsageError(f"{arg} needs a value")
        opts[name] = value
    for required in ("id", "bundle", "state-dir", "runtime"):
        if not opts.get(required):
            raise UsageError(f"--{required} is required")
    for path_option in ("bundle", "state-dir", "runtime-root", "log"):
        if opts.get(path_option):
            opts[path_option] = os.path.abspath(opts[path_option])
    opts["log-max-size"] = int(opts.get("log-max-size") or 0)
    opts["log-max-files"] = int(opts.get("log-max-files") or 1)
    return opts


def load_backend(runtime: str, runtime_root: str | None) -> Any:
    """The OCIRuntime for `runtime`, imported only now (the builtin may be absent)."""
    root = runtime_root or DEFAULT_RUNTIME_ROOT.format(runtime=runtime)
    if runtime == "builtin":
        from dockyard.runtime.builtin.runtime import BuiltinRuntime

        return BuiltinRuntime(root)
    if runtime in ("runc", "crun"):
        from dockyard.runtime.oci_cli import OCICliRuntime

        return OCICliRuntime(runtime, root)
    raise UsageError(f"unknown runtime {runtime!r}")


def become_subreaper() -> None:
    """Orphans of the container (and its init, once the runtime exits) are reparented to us."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def exit_code_from_status(status: int) -> int:
    """waitpid status → docker's exit code (killed by signal N → 128 + N)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


class Client:
    """One connection on monitor.sock; `role` is set by its first control frame."""

    __slots__ = (
        "decoder",
        "kinds",
        "out",
        "paused",
        "read_closed",
        "role",
        "session",
        "sock",
        "stdin",
        "stdin_done",
        "then_close",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = frames.FrameDecoder()
        self.out = bytearray()
        self.role = ""
        self.kinds: tuple[int, ...] = ()
        self.stdin = False
        self.stdin_done = False
        self.read_closed = False
        self.then_close = False
        self.paused = False
        self.session: ExecSession | None = None  # role "exec": the process this connection runs


class StdinWriter:
    """A process's stdin (a pipe, or a dup of its pty master) fed without blocking the loop: data is
    buffered and written as the process takes it; EOF closes it (a terminal gets ^D first).
    `on_pressure(True)` asks the senders to pause while too much is buffered."""

    __slots__ = ("buf", "eof", "fd", "on_pressure", "sel", "tty")

    def __init__(self, sel: selectors.BaseSelector, fd: int, tty: bool, on_pressure: Callable[[bool], None]) -> None:
        os.set_blocking(fd, False)
        self.sel = sel
        self.fd: int | None = fd
        self.tty = tty
        self.buf = bytearray()
        self.eof = False
        self.on_pressure = on_pressure

    @property
    def open(self) -> bool:
        """Whether input is still accepted."""
        return self.fd is not None and not self.eof

    def write(self, data: bytes) -> None:
        if self.open:
            self.buf += data
            self.flush()

    def end(self) -> None:
        """No more input: close once what is buffered has been written."""
        if self.open:
            self.eof = True
            self.flush()

    def flush(self, *_event: object) -> None:
        """Push buffered bytes; wait for writability when the process is slow."""
        fd = self.fd
        if fd is None:
            return
        try:
            while self.buf:
                written = os.write(fd, self.buf)
                del self.buf[:written]
        except BlockingIOError:
            pass
        except OSError:  # the process closed its stdin: nothing more can go in
            self.buf.clear()
            self.eof = True
        registered = fd in self.sel.get_map()
        if self.buf and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, self.flush)
        elif not self.buf and registered:
            self.sel.unregister(fd)
        if not self.buf and self.eof:
            self.close()
        self.on_pressure(len(self.buf) > STDIN_HIGH_WATER)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is None:
            return
        if self.tty:
            with contextlib.suppress(OSError):
                os.write(fd, EOT)
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        os.close(fd)


class ExecSession:
    """One `docker exec` process: its stdio (pipes or its own pty), its connection, its exit."""

    __slots__ = ("client", "drain_deadline", "exec_id", "master", "outputs", "pid", "status", "stdin")

    def __init__(self, exec_id: str, client: Client) -> None:
        self.exec_id = exec_id
        self.client = client
        self.pid = 0
        self.status: int | None = None
        self.drain_deadline = 0.0
        self.master: int | None = None
        self.outputs: dict[int, int] = {}  # fd → frame kind
        self.stdin: StdinWriter | None = None


class Monitor:
    """The event loop: container output → log + attached clients; clients → stdin / control."""

    def __init__(self, opts: dict[str, Any], backend: Any) -> None:
        self.opts = opts
        self.container_id: str = opts["id"]
        self.state_dir: str = opts["state-dir"]
        self.backend = backend
        self.sel = selectors.DefaultSelector()
        self.clients: dict[socket.socket, Client] = {}
        self.outputs: dict[int, int] = {}  # fd → frame kind
        self.stdin: StdinWriter | None = None
        self.master: int | None = None
        self.execs: dict[int, ExecSession] = {}  # host pid → exec
        self.log: Any = None
        self.init_pid = 0
        self.init_status: int | None = None
        self.finished_at = ""
        self.start_error: RuntimeFailure | None = None
        self.result: dict[str, Any] | None = None
        self.listener: socket.socket | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    # ----------------------------------------------------------------------- setup

    def create(self) -> int:
        """Allocate stdio, create the container; returns the init pid (RuntimeFailure)."""
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        child_fds: list[int] = []
        try:
            stdio = self._allocate_stdio(child_fds)
            self.init_pid = int(self._backend_call(self.backend.create, self.container_id, self.opts["bundle"], stdio))
        finally:
            for fd in child_fds:
                os.close(fd)
        take_console = getattr(self.backend, "take_console", None)
        console = take_console(self.container_id) if take_console and self.opts["tty"] else None
        if console is not None:
            self._use_master(console)
        return self.init_pid

    def _backend_call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call the backend; a stateless one (builtin) runs in a throw-away forked helper."""
        if getattr(self.backend, "stateless", False):
            return _in_helper(lambda: method(*args))
        return method(*args)

    def _allocate_stdio(self, child_fds: list[int]) -> Stdio:
        """Pipes, or a pty; with a console-owning backend (runc/crun) the pty comes later."""
        tty, want_stdin = self.opts["tty"], self.opts["stdin"]
        if tty:
            if hasattr(self.backend, "take_console"):
                return Stdio(None, -1, -1, terminal=True)
            master, slave = os.openpty()
            child_fds.append(slave)
            self._use_master(master)
            return Stdio(slave, slave, slave, terminal=True)
        stdin_child = None
        if want_stdin:
            stdin_child, stdin_fd = os.pipe2(os.O_CLOEXEC)
            child_fds.append(stdin_child)
            self.stdin = StdinWriter(self.sel, stdin_fd, False, self._pause_stdin_senders)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child_fds += [out_w, err_w]
        self.outputs = {out_r: frames.STDOUT, err_r: frames.STDERR}
        return Stdio(stdin_child, out_w, err_w)

    def _use_master(self, master: int) -> None:
        os.set_inheritable(master, False)
        self.master = master
        self.outputs = {master: frames.STDOUT}
        if self.opts["stdin"]:  # own fd: registered for writing independently
            self.stdin = StdinWriter(self.sel, os.dup(master), True, self._pause_stdin_senders)

    def listen(self) -> None:
        """Bind monitor.sock (0600; relative to state-dir, long paths are fine), write the pid."""
        os.chdir(self.state_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET_NAME)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)
        try:
            listener.bind(SOCKET_NAME)
        finally:
            os.umask(old_umask)
        os.chmod(SOCKET_NAME, 0o600)
        listener.listen(64)
        listener.setblocking(False)
        self.listener = listener
        with open(PID_NAME + ".tmp", "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(PID_NAME + ".tmp", PID_NAME)

    # ----------------------------------------------------------------------- loop

    def run(self) -> None:
        """Serve until the init has exited and its output is drained, then finish."""
        if self.opts.get("log"):
            from dockyard.runtime.jsonlog import JsonLogWriter

            self.log = JsonLogWriter(self.opts["log"], self.opts["log-max-size"], self.opts["log-max-files"])
        sel = self.sel
        assert self.listener is not None
        sel.register(self.listener, selectors.EVENT_READ, self._on_accept)
        sel.register(self._wake_r, selectors.EVENT_READ, self._on_wakeup)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, self._on_output)
        self._reap()
        drain_deadline = None
        while True:
            self._end_finished_execs()
            if self.init_status is not None:
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + DRAIN_TIMEOUT
                if not self.outputs or time.monotonic() >= drain_deadline:
                    break
            deadlines = [s.drain_deadline for s in self.execs.values() if s.status is not None]
            if drain_deadline is not None:
                deadlines.append(drain_deadline)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, events in sel.select(timeout):
                key.data(key.fileobj, events)
        self._finish()

    def _on_wakeup(self, fd: int, _events: int) -> None:
        try:
            while os.read(fd, 512):
                pass
        except BlockingIOError:
            pass
        self._reap()

    def _reap(self) -> None:
        """Collect every exited child: the init, and orphans reparented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.init_status is None:
                self.init_status = status
                self.finished_at = _now_rfc3339()
            elif pid in self.execs:
                session = self.execs[pid]
                session.status = status
                session.drain_deadline = time.monotonic() + DRAIN_TIMEOUT

    def _on_output(self, fd: int, _events: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:  # EIO: the pty's last slave closed
                raise
            data = b""
        if not data:
            self._close_output(fd)
            return
        kind = self.outputs[fd]
        if self.log is not None:
            try:
                self.log.write("stdout" if kind == frames.STDOUT else "stderr", data)
            except OSError as exc:
                print(f"monitor: log write failed: {exc}", file=sys.stderr)
        frame = None
        for client in list(self.clients.values()):
            if kind in client.kinds:
                frame = frame or frames.encode_frame(kind, data)
                self._send(client, frame)

    def _close_output(self, fd: int) -> None:
        self.sel.unregister(fd)
        del self.outputs[fd]
        if fd != self.master:
            os.close(fd)

    # ----------------------------------------------------------------------- clients

    def _on_accept(self, listener: socket.socket, _events: int) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        client = Client(sock)
        self.clients[sock] = client
        self.sel.register(sock, selectors.EVENT_READ, self._on_client)

    def _on_client(self, sock: socket.socket, events: int) -> None:
        client = self.clients.get(sock)
        if client is None:
            return
        if events & selectors.EVENT_WRITE:
            self._flush(client)
        if events & selectors.EVENT_READ and sock in self.clients:
            self._read_client(client)

    def _read_client(self, client: Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        if not data:
            self._client_read_eof(client)
            return
        try:
            for kind, payload in client.decoder.feed(data):
                if client.sock not in self.clients:
                    return
                self._on_frame(client, kind, payload)
        except frames.FrameError:
            self._drop(client)

    def _client_read_eof(self, client: Client) -> None:
        """The peer closed (or half-closed) its side: its stdin ended; keep sending output."""
        client.read_closed = True
        if client.role in ("attach", "exec") and client.stdin:
            self._client_stdin_eof(client)
        if (client.role == "attach" and client.kinds) or client.role in ("wait", "exec"):
            self._update_events(client)
        elif client.out:
            client.then_close = True
            self._update_events(client)
        else:
            self._drop(client)

    def _on_frame(self, client: Client, kind: int, payload: bytes) -> None:
        if not client.role:
            if kind != frames.CONTROL:
                raise frames.FrameError("first frame must be a control frame")
            self._on_request(client, frames.decode_control(payload))
        elif kind == frames.STDIN and client.stdin and not client.stdin_done:
            if not payload:
                self._client_stdin_eof(client)
            elif client.session is not None and client.session.stdin is not None:
                client.session.stdin.write(payload)
            elif client.role == "attach" and self.stdin is not None:
                self.stdin.write(payload)

    def _on_request(self, client: Client, req: dict[str, Any]) -> None:
        op = req.get("op")
        handler = getattr(self, f"_op_{op}", None) if isinstance(op, str) else None
        if handler is None:
            self._reply(client, {"error": f"unknown op {op!r}"})
            return
        handler(client, req)

    def _reply(self, client: Client, obj: dict[str, Any]) -> None:
        """Answer a request and close once the answer is out."""
        client.role = client.role or "done"
        client.then_close = True
        self._send(client, frames.encode_control(obj))

    def _op_attach(self, client: Client, req: dict[str, Any]) -> None:
        client.role = "attach"
        client.kinds = tuple(
            kind for kind, key in ((frames.STDOUT, "stdout"), (frames.STDERR, "stderr")) if req.get(key)
        )
        client.stdin = bool(req.get("stdin")) and self.stdin is not None and self.stdin.open
        self._send(client, frames.encode_control({"ok": True}))
        if self.result is not None:
            self._reply(client, {"exit": self.result["ExitCode"]})

    def _op_start(self, client: Client, _req: dict[str, Any]) -> None:
        if self.init_status is not None:
            self._reply(client, {"error": "container has already exited", "exit_code": 125})
            return
        try:
            self._backend_call(self.backend.start, self.container_id)
        except RuntimeFailure as exc:
            self.start_error = exc
            self._reply(client, {"error": exc.message, "exit_code": exc.exit_code})
            return
        self._reply(client, {"ok": True})

    def _op_wait(self, client: Client, _req: dict[str, Any]) -> None:
        client.role = "wait"
        if self.result is not None:
            self._reply(client, self._wait_answer())

    def _op_kill(self, client: Client, req: dict[str, Any]) -> None:
        if self.init_status is not None:
            self._reply(client, {"error": "container is not running"})
            return
        try:
            sig = int(req.get("signal", signal.SIGKILL))
            if req.get("exec"):
                os.kill(self._exec_session(str(req["exec"])).pid, sig)  # unreaped child: no pid reuse
            else:
                self.backend.kill(self.container_id, sig)
        except (RuntimeFailure, OSError, ValueError, KeyError) as exc:
            self._reply(client, {"error": str(exc)})
            return
        self._reply(client, {"ok": True})

    def _op_resize(self, client: Client, req: dict[str, Any]) -> None:
        try:
            master = self._exec_session(str(req["exec"])).master if req.get("exec") else self.master
        except KeyError as exc:
            self._reply(client, {"error": str(exc)})
            return
        if master is None:
            self._reply(client, {"error": "the process has no tty"})
            return
        try:
            _set_winsize(master, req["height"], req["width"])
        except (KeyError, ValueError, TypeError, OSError) as exc:
            self._reply(client, {"error": f"resize failed: {exc}"})
            return
        self._reply(client, {"ok": True})

    # ----------------------------------------------------------------------- exec

    def _op_exec(self, client: Client, req: dict[str, Any]) -> None:
        """Start a process in the running container; this connection then carries its stdio
        (like attach) and ends with {"exit": code}."""
        exec_process = getattr(self.backend, "exec_process", None)
        process = req.get("process")
        if self.init_status is not None:
            self._reply(client, {"error": f"container {self.container_id} is not running", "exit_code": 126})
            return
        if exec_process is None or not isinstance(process, dict):
            self._reply(
                client,
                {
                    "error": "exec is not supported by this runtime"
                    if exec_process is None
                    else "exec needs a process",
                    "exit_code": 126,
                },
            )
            return
        session = ExecSession(str(req.get("id") or ""), client)
        child_fds: list[int] = []
        try:
            stdio = self._exec_stdio(session, req, bool(process.get("terminal")), child_fds)
            session.pid = exec_process(self.container_id, process, stdio)
        except (RuntimeFailure, OSError) as exc:
            self._close_exec_stdio(session)
            message, code = (exc.message, exc.exit_code) if isinstance(exc, RuntimeFailure) else (str(exc), 126)
            self._reply(client, {"error": message, "exit_code": code})
            return
        finally:
            for fd in child_fds:
                os.close(fd)
        take_console = getattr(self.backend, "take_console", None)
        if stdio.terminal and take_console is not None:
            self._use_exec_master(session, take_console(self.container_id), req)
        for fd in session.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, lambda f, _e, s=session: self._on_exec_output(s, f))
        client.role = "exec"
        client.session = session
        client.stdin = session.stdin is not None
        self.execs[session.pid] = session
        self._send(client, frames.encode_control({"ok": True, "pid": session.pid}))

    def _exec_stdio(self, session: ExecSession, req: dict[str, Any], tty: bool, child_fds: list[int]) -> Stdio:
        """The exec's own pipes (only for the streams asked for; /dev/null otherwise) or its own pty."""
        if tty:
            if hasattr(self.backend, "take_console"):
                return Stdio(None, -1, -1, terminal=True)
            master, slave = self._container_pty()
            child_fds.append(slave)
            self._use_exec_master(session, master, req)
            return Stdio(slave, slave, slave, terminal=True)
        stdin_child = None
        if req.get("stdin"):
            stdin_child, stdin_fd = os.pipe2(os.O_CLOEXEC)
            child_fds.append(stdin_child)
            session.stdin = StdinWriter(self.sel, stdin_fd, False, lambda p: self._pause_client(session.client, p))
        ends = []
        for kind, key in ((frames.STDOUT, "stdout"), (frames.STDERR, "stderr")):
            if req.get(key):
                read_end, write_end = os.pipe2(os.O_CLOEXEC)
                session.outputs[read_end] = kind
            else:
                write_end = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
            child_fds.append(write_end)
            ends.append(write_end)
        return Stdio(stdin_child, ends[0], ends[1])

    def _container_pty(self) -> tuple[int, int]:
        """A pty of the container's own devpts, so the exec sees /dev/pts/N as under runc (ttyname
        works); our own pty when that instance cannot be reached."""
        import fcntl
        import struct

        try:
            master = os.open(f"/proc/{self.init_pid}/root/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            return os.openpty()
        try:
            fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
            slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError:
            os.close(master)
            return os.openpty()
        return master, slave

    def _use_exec_master(self, session: ExecSession, master: int | None, req: dict[str, Any]) -> None:
        if master is None:
            return
        os.set_inheritable(master, False)
        session.master = master
        session.outputs = {master: frames.STDOUT}
        if req.get("height") and req.get("width"):
            with contextlib.suppress(OSError, ValueError, TypeError):
                _set_winsize(master, req["height"], req["width"])
        if req.get("stdin"):
            session.stdin = StdinWriter(self.sel, os.dup(master), True, lambda p: self._pause_client(session.client, p))

    def _on_exec_output(self, session: ExecSession, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self.sel.unregister(fd)
            del session.outputs[fd]
            if fd != session.master:
                os.close(fd)
            return
        if session.client.sock in self.clients:
            self._send(session.client, frames.encode_frame(session.outputs[fd], data))

    def _exec_session(self, exec_id: str) -> ExecSession:
        for session in self.execs.values():
            if session.exec_id == exec_id:
                return session
        raise KeyError(f"no such exec: {exec_id}")

    def _end_finished_execs(self, force: bool = False) -> None:
        """Report the exit of execs whose output is drained (or whose drain time is up)."""
        now = time.monotonic()
        for pid, session in list(self.execs.items()):
            if not force and (session.status is None or (session.outputs and now < session.drain_deadline)):
                continue
            del self.execs[pid]
            self._close_exec_stdio(session)
            code = 137 if session.status is None else exit_code_from_status(session.status)
            if session.client.sock in self.clients:
                self._reply(session.client, {"exit": code})

    def _close_exec_stdio(self, session: ExecSession) -> None:
        for fd in list(session.outputs):
            if fd in self.sel.get_map():
                self.sel.unregister(fd)
            if fd != session.master:
                os.close(fd)
        session.outputs = {}
        if session.stdin is not None:
            session.stdin.close()
        if session.master is not None:
            os.close(session.master)
            session.master = None

    def _op_info(self, client: Client, _req: dict[str, Any]) -> None:
        self._reply(client, {"pid": self.init_pid, "monitor_pid": os.getpid(), "running": self.init_status is None})

    def _wait_answer(self) -> dict[str, Any]:
        assert self.result is not None
        answer = {
            "exit": self.result["ExitCode"],
            "finished_at": self.result["FinishedAt"],
            "oom_killed": self.result["OOMKilled"],
        }
        if self.result["Error"]:
            answer["error"] = self.result["Error"]
        return answer

    # ----------------------------------------------------------------------- stdin

    def _client_stdin_eof(self, client: Client) -> None:
        client.stdin_done = True
        if client.session is not None:
            if client.session.stdin is not None:
                client.session.stdin.end()
        elif self.opts["stdin-once"] and self.stdin is not None:
            self.stdin.end()

    def _pause_stdin_senders(self, pause: bool) -> None:
        for client in list(self.clients.values()):
            if client.role == "attach":
                self._pause_client(client, pause)

    def _pause_client(self, client: Client, pause: bool) -> None:
        if client.stdin and not client.stdin_done and client.paused != pause:
            client.paused = pause
            self._update_events(client)

    # ----------------------------------------------------------------------- sending

    def _send(self, client: Client, data: bytes) -> None:
        """Queue and try to send at once; a client that falls too far behind is dropped."""
        if client.out:
            client.out += data
        else:
            try:
                sent = client.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._drop(client)
                return
            if sent < len(data):
                client.out += data[sent:]
        if len(client.out) > CLIENT_BUFFER_LIMIT:
            self._drop(client)
            return
        self._after_send(client)

    def _flush(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        del client.out[:sent]
        self._after_send(client)

    def _after_send(self, client: Client) -> None:
        if not client.out and client.then_close:
            self._drop(client)
        else:
            self._update_events(client)

    def _update_events(self, client: Client) -> None:
        """Register for exactly what the client needs now: reads unless closed or paused,
        writes while output is queued (nothing at all when neither)."""
        if client.sock not in self.clients:
            return
        events = 0 if client.read_closed or client.paused else selectors.EVENT_READ
        if client.out:
            events |= selectors.EVENT_WRITE
        key = self.sel.get_map().get(client.sock)
        if key is None:
            if events:
                self.sel.register(client.sock, events, self._on_client)
        elif not events:
            self.sel.unregister(client.sock)
        elif key.events != events:
            self.sel.modify(client.sock, events, self._on_client)

    def _drop(self, client: Client) -> None:
        if self.clients.pop(client.sock, None) is None:
            return
        if client.stdin and not client.stdin_done:
            self._client_stdin_eof(client)
        if client.sock in self.sel.get_map():
            self.sel.unregister(client.sock)
        client.sock.close()

    # ----------------------------------------------------------------------- exit

    def _finish(self) -> None:
        """Record the exit, release the runtime, tell everyone, clean up."""
        from dockyard.util.fs import write_json

        for fd in list(self.outputs):
            self._close_output(fd)
        if self.log is not None:
            self.log.close()
        if self.stdin is not None:
            self.stdin.close()
        self._reap()
        self._end_finished_execs(force=True)
        assert self.init_status is not None
        code = exit_code_from_status(self.init_status)
        error = ""
        if self.start_error is not None:
            code, error = self.start_error.exit_code, self.start_error.message
        oom_check = getattr(self.backend, "oom_killed", None)
        oom = bool(oom_check and _quietly(oom_check, self.container_id))
        self.result = {"ExitCode": code, "FinishedAt": self.finished_at, "OOMKilled": oom, "Error": error}
        # Read by a restarted daemon; after a reboot the container is gone anyway: no fsync.
        write_json(os.path.join(self.state_dir, EXIT_NAME), self.result, durable=False)
        _quietly(self.backend.delete, self.container_id)
        self._stop_listening()
        for client in list(self.clients.values()):
            if client.role == "attach":
                self._reply(client, {"exit": code})
            elif client.role == "wait":
                self._reply(client, self._wait_answer())
        self._flush_clients()
        _unlink_quietly(PID_NAME)

    def _stop_listening(self) -> None:
        if self.listener is not None:
            self.sel.unregister(self.listener)
            self.listener.close()
            self.listener = None
            _unlink_quietly(SOCKET_NAME)

    def _flush_clients(self) -> None:
        """Give clients their last bytes (bounded in time); nothing is read any more."""
        for client in list(self.clients.values()):
            client.read_closed = True
            self._update_events(client)
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while any(c.out for c in self.clients.values()) and time.monotonic() < deadline:
            for key, events in self.sel.select(max(0.0, deadline - time.monotonic())):
                key.data(key.fileobj, events)
        for client in list(self.clients.values()):
            self._drop(client)


def _in_helper(call: Callable[[], Any]) -> Any:
    """Run a stateless backend's call in a forked child and return its (JSON-able) result.

    The monitor lives as long as its container; every page it touches stops being shared with the
    zygote. Running the runtime's setup code in a throw-away child keeps those pages clean. The
    container init is reparented to us (we are the subreaper) when its launcher exits."""
    import json

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            answer: dict[str, Any] = {"result": call()}
        except RuntimeFailure as exc:
            answer = {"error": exc.message, "exit_code": exc.exit_code}
        except BaseException as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "exit_code": 125}
        os.write(write_fd, json.dumps(answer).encode() + b"\n")
        os._exit(0)
    os.close(write_fd)
    # Read up to the newline, not to EOF: the container init inherited the write end and keeps it
    # until it execs, which waits for `start`.
    chunks = []
    while (chunk := os.read(read_fd, 65536)) and not chunk.endswith(b"\n"):
        chunks.append(chunk)
    chunks.append(chunk)
    os.close(read_fd)
    os.waitpid(pid, 0)
    answer = json.loads(b"".join(chunks) or b'{"error": "runtime helper died", "exit_code": 125}')
    if "error" in answer:
        raise RuntimeFailure(answer["error"], answer["exit_code"])
    return answer["result"]


def _set_winsize(fd: int, height: Any, width: Any) -> None:
    """TIOCSWINSZ on a pty master; the process group of the terminal gets SIGWINCH."""
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(height), int(width), 0, 0))


def _quietly(func: Any, *args: Any) -> Any:
    """Cleanup must go on even when one step fails; the failure goes to the monitor's stderr."""
    try:
        return func(*args)
    except Exception as exc:
        print(f"monitor: {getattr(func, '__name__', func)} failed: {exc}", file=sys.stderr)
        return None


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _now_rfc3339() -> str:
    from dockyard.util.timefmt import rfc3339_nano

    return rfc3339_nano()


def _handshake(obj: dict[str, Any]) -> None:
    """One JSON line on stdout for the spawner, then stdout points at /dev/null."""
    import json

    line = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    with contextlib.suppress(OSError):
        os.write(1, line)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def main(argv: list[str] | None = None, detached: bool = False) -> int:
    """Fork once (the spawner reaps the parent at once), then monitor the container. A caller
    that already made us a detached child nobody waits for (the zygote) passes detached=True."""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        _handshake({"error": f"monitor: {exc}", "exit_code": 125})
        return 2
    if not detached and os.fork():
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        become_subreaper()
        monitor = Monitor(opts, load_backend(opts["runtime"], opts.get("runtime-root")))
        pid = monitor.create()
    except RuntimeFailure as exc:
        _handshake({"error": exc.message, "exit_code": exc.exit_code})
        return 1
    except Exception as exc:
        _handshake({"error": f"monitor: {exc}", "exit_code": 125})
        return 1
    try:
        monitor.listen()
    except OSError as exc:
        _quietly(monitor.backend.kill, opts["id"], signal.SIGKILL)
        _quietly(monitor.backend.delete, opts["id"])
        _handshake({"error": f"monitor: cannot listen: {exc}", "exit_code": 125})
        return 1
    _handshake({"pid": pid, "monitor_pid": os.getpid()})
    monitor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
