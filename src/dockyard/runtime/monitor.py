"""The per-container monitor: `python -m dockyard.runtime.monitor --id ID --bundle DIR ...`.

One small process per container (what conmon / containerd-shim are for docker): it outlives
the daemon, is the parent (child subreaper) of the container's init, owns its stdio, writes
the json-file log, serves attach/start/wait/kill/resize on `monitor.sock` (protocol in
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
from typing import Any

from dockyard.runtime import frames
from dockyard.runtime.base import RuntimeFailure, Stdio

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

_VALUE_OPTIONS = {"id", "bundle", "state-dir", "runtime", "runtime-root", "log", "log-max-size"}
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
    return opts


def load_backend(runtime: str, runtime_root: str | None) -> Any:
    """The OCIRuntime for `runtime`, imported only now (the builtin may be absent)."""
    root = runtime_root or DEFAULT_RUNTIME_ROOT.format(runtime=runtime)
    if runtime == "builtin":
        import importlib

        package = importlib.import_module("dockyard.runtime.builtin")
        runtime_class = getattr(package, "BuiltinRuntime", None)
        if runtime_class is None:  # not re-exported by the package (yet)
            runtime_class = importlib.import_module("dockyard.runtime.builtin.runtime").BuiltinRuntime
        return runtime_class(root)
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

    __slots__ = ("decoder", "kinds", "out", "paused", "read_closed", "role", "sock", "stdin", "stdin_done",
                 "then_close")

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
        self.stdin_fd: int | None = None
        self.stdin_buf = bytearray()
        self.stdin_eof = False
        self.master: int | None = None
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
            self.init_pid = self.backend.create(self.container_id, self.opts["bundle"], stdio)
        finally:
            for fd in child_fds:
                os.close(fd)
        take_console = getattr(self.backend, "take_console", None)
        console = take_console(self.container_id) if take_console and self.opts["tty"] else None
        if console is not None:
            self._use_master(console)
        return self.init_pid

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
            stdin_child, self.stdin_fd = os.pipe2(os.O_CLOEXEC)
            child_fds.append(stdin_child)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child_fds += [out_w, err_w]
        self.outputs = {out_r: frames.STDOUT, err_r: frames.STDERR}
        return Stdio(stdin_child, out_w, err_w)

    def _use_master(self, master: int) -> None:
        os.set_inheritable(master, False)
        self.master = master
        self.outputs = {master: frames.STDOUT}
        if self.opts["stdin"]:
            self.stdin_fd = os.dup(master)  # own fd: registered for writing independently

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

            self.log = JsonLogWriter(self.opts["log"], self.opts["log-max-size"])
        sel = self.sel
        assert self.listener is not None
        sel.register(self.listener, selectors.EVENT_READ, self._on_accept)
        sel.register(self._wake_r, selectors.EVENT_READ, self._on_wakeup)
        for fd in self.outputs:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_READ, self._on_output)
        if self.stdin_fd is not None:
            os.set_blocking(self.stdin_fd, False)
        self._reap()
        drain_deadline = None
        while True:
            if self.init_status is not None:
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + DRAIN_TIMEOUT
                if not self.outputs or time.monotonic() >= drain_deadline:
                    break
            timeout = None if drain_deadline is None else max(0.0, drain_deadline - time.monotonic())
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
        if client.role == "attach" and client.stdin:
            self._client_stdin_eof(client)
        if (client.role == "attach" and client.kinds) or client.role == "wait":
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
        elif kind == frames.STDIN and client.role == "attach" and client.stdin and not client.stdin_done:
            if payload:
                self._queue_stdin(payload)
            else:
                self._client_stdin_eof(client)

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
        client.stdin = bool(req.get("stdin")) and self.stdin_fd is not None and not self.stdin_eof
        self._send(client, frames.encode_control({"ok": True}))
        if self.result is not None:
            self._reply(client, {"exit": self.result["ExitCode"]})

    def _op_start(self, client: Client, _req: dict[str, Any]) -> None:
        if self.init_status is not None:
            self._reply(client, {"error": "container has already exited", "exit_code": 125})
            return
        try:
            self.backend.start(self.container_id)
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
            self.backend.kill(self.container_id, int(req.get("signal", signal.SIGKILL)))
        except (RuntimeFailure, OSError, ValueError) as exc:
            self._reply(client, {"error": str(exc)})
            return
        self._reply(client, {"ok": True})

    def _op_resize(self, client: Client, req: dict[str, Any]) -> None:
        if self.master is None:
            self._reply(client, {"error": "the container has no tty"})
            return
        import fcntl
        import struct
        import termios

        try:
            size = struct.pack("HHHH", int(req["height"]), int(req["width"]), 0, 0)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        except (KeyError, ValueError, OSError, struct.error) as exc:
            self._reply(client, {"error": f"resize failed: {exc}"})
            return
        self._reply(client, {"ok": True})

    def _op_info(self, client: Client, _req: dict[str, Any]) -> None:
        self._reply(client, {"pid": self.init_pid, "monitor_pid": os.getpid(),
                             "running": self.init_status is None})

    def _wait_answer(self) -> dict[str, Any]:
        assert self.result is not None
        answer = {"exit": self.result["ExitCode"], "finished_at": self.result["FinishedAt"],
                  "oom_killed": self.result["OOMKilled"]}
        if self.result["Error"]:
            answer["error"] = self.result["Error"]
        return answer

    # ----------------------------------------------------------------------- stdin

    def _queue_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None or self.stdin_eof:
            return
        self.stdin_buf += data
        self._write_stdin(self.stdin_fd, selectors.EVENT_WRITE)

    def _client_stdin_eof(self, client: Client) -> None:
        client.stdin_done = True
        if self.opts["stdin-once"] and not self.stdin_eof:
            self.stdin_eof = True
            self._write_stdin(self.stdin_fd, selectors.EVENT_WRITE)

    def _write_stdin(self, fd: int | None, _events: int) -> None:
        """Push buffered stdin; close it once drained after EOF; pause senders when full."""
        if fd is None:
            return
        try:
            while self.stdin_buf:
                written = os.write(fd, self.stdin_buf)
                del self.stdin_buf[:written]
        except BlockingIOError:
            pass
        except OSError:  # the container closed its stdin: nothing more can go in
            self.stdin_buf.clear()
            self.stdin_eof = True
        registered = fd in self.sel.get_map()
        if self.stdin_buf and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, self._write_stdin)
        elif not self.stdin_buf and registered:
            self.sel.unregister(fd)
        if not self.stdin_buf and self.stdin_eof:
            self._close_stdin()
        self._pause_stdin_senders(len(self.stdin_buf) > STDIN_HIGH_WATER)

    def _close_stdin(self) -> None:
        fd, self.stdin_fd = self.stdin_fd, None
        if fd is None:
            return
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.write(fd, EOT)
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        os.close(fd)

    def _pause_stdin_senders(self, pause: bool) -> None:
        for client in self.clients.values():
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
        self._close_stdin()
        assert self.init_status is not None
        code = exit_code_from_status(self.init_status)
        error = ""
        if self.start_error is not None:
            code, error = self.start_error.exit_code, self.start_error.message
        oom_check = getattr(self.backend, "oom_killed", None)
        oom = bool(oom_check and _quietly(oom_check, self.container_id))
        self.result = {"ExitCode": code, "FinishedAt": self.finished_at, "OOMKilled": oom, "Error": error}
        write_json(os.path.join(self.state_dir, EXIT_NAME), self.result)
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


def main(argv: list[str] | None = None) -> int:
    """Fork once (the spawner reaps the parent at once), then monitor the container."""
    try:
        opts = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        _handshake({"error": f"monitor: {exc}", "exit_code": 125})
        return 2
    if os.fork():
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
