"""`docker exec`: exec records and their lifecycle (create → start → exit), as moby's daemon/exec.go.

A record lives in the daemon's memory (docker keeps execs in memory too). Starting one asks the
container's monitor to run an OCI process built from the container's own (joining its namespaces
and cgroup); the monitor owns the process's stdio and reports its exit on the same connection,
which a pump thread reads to the end, whether or not the API client is still there, so the exit
code always reaches `GET /exec/{id}/json`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidParameter, NotFound
from dockyard.runtime.base import RuntimeFailure
from dockyard.runtime.frames import CONTROL, STDOUT, encode_frame
from dockyard.util.ids import new_id

log = logging.getLogger("dockyard.execs")

EXEC_FAILED_CODE = 126  # docker: an exec that could not start and says nothing more precise
KILLED_CODE = 137  # the container (hence the exec) went away without an exit report
_START_MARKER = "unable to start container process: "


class ExecRecord:
    """One exec instance; `inspect()` is docker's ExecInspect shape."""

    def __init__(self, container: Any, body: dict[str, Any]) -> None:
        self.id = new_id()
        self.container = container
        cmd = list(body.get("Cmd") or [])
        self.entrypoint, self.args = cmd[0], cmd[1:]
        self.tty = bool(body.get("Tty"))
        self.privileged = bool(body.get("Privileged"))
        self.user = str(body.get("User") or container.config.get("User") or "")
        self.working_dir = str(body.get("WorkingDir") or container.config.get("WorkingDir") or "")
        self.env = [str(e) for e in body.get("Env") or []]
        self.open_stdin = bool(body.get("AttachStdin"))
        self.open_stdout = bool(body.get("AttachStdout"))
        self.open_stderr = bool(body.get("AttachStderr"))
        self.detach_keys = str(body.get("DetachKeys") or "")
        self.console_size = _console_size(body.get("ConsoleSize"))
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.lock = threading.Lock()

    def inspect(self) -> dict[str, Any]:
        process: dict[str, Any] = {
            "tty": self.tty,
            "entrypoint": self.entrypoint,
            "arguments": self.args,
            "privileged": self.privileged,
        }
        if self.user:
            process["user"] = self.user
        return {
            "ID": self.id, "Running": self.running, "ExitCode": self.exit_code, "ProcessConfig": process,
            "OpenStdin": self.open_stdin, "OpenStderr": self.open_stderr, "OpenStdout": self.open_stdout,
            "CanRemove": False, "ContainerID": self.container.id, "DetachKeys": "", "Pid": self.pid,
        }  # fmt: skip


class ExecService:
    """Exec records by id, their start (attached or detached), resize and inspect."""

    def __init__(self, containers: Any) -> None:
        self.containers = containers
        self._execs: dict[str, ExecRecord] = {}
        self._lock = threading.Lock()
        containers.exit_listeners.append(self.forget_container)

    def forget_container(self, container: Any) -> None:
        """Drop the execs of a container that exited (docker's Cleanup does): without this every
        exec ever made, health checks included, would stay in memory; inspecting one now says 404."""
        with self._lock:
            for exec_id in [i for i, rec in self._execs.items() if rec.container is container]:
                del self._execs[exec_id]

    # ------------------------------------------------------------------ create / lookup
    def create(self, ref: str, body: dict[str, Any]) -> ExecRecord:
        """POST /containers/{id}/exec: validate against the running container, keep the record."""
        c = self.containers.get(ref)
        _require_running(c)
        if not body.get("Cmd"):
            raise InvalidParameter("No exec command specified")
        if body.get("DetachKeys"):
            from dockyard.daemon.attach import parse_detach_keys

            try:
                parse_detach_keys(body["DetachKeys"])
            except InvalidParameter:
                raise InvalidParameter(f"Invalid escape keys ({body['DetachKeys']}) provided") from None
        rec = ExecRecord(c, body)
        if body.get("User"):
            self._resolve_user(rec)  # an unknown user fails now, as docker does
        with self._lock:
            self._execs[rec.id] = rec
        self.containers._event(c, f"exec_create: {' '.join([rec.entrypoint, *rec.args])}", execID=rec.id)
        return rec

    def get(self, exec_id: str) -> ExecRecord:
        with self._lock:
            rec = self._execs.get(exec_id)
        if rec is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return rec

    def inspect(self, exec_id: str) -> dict[str, Any]:
        rec = self.get(exec_id)
        with rec.lock:
            return rec.inspect()

    def resize(self, exec_id: str, height: int, width: int) -> None:
        rec = self.get(exec_id)
        monitor = rec.container.monitor
        if not rec.running or monitor is None:
            raise Conflict(
                f"container {rec.container.id} is not running" if monitor is None else f"exec {exec_id} is not running"
            )
        try:
            monitor.resize(height, width, exec_id)
        except RuntimeFailure as exc:
            raise DockyardError(f"cannot resize exec {exec_id}: {exc.message}") from None

    # ------------------------------------------------------------------ start
    def prepare_start(self, exec_id: str) -> ExecRecord:
        """The checks docker makes before it hijacks the connection (404, 409); marks it running."""
        rec = self.get(exec_id)
        _require_running(rec.container)
        with rec.lock:
            if rec.exit_code is not None:
                raise Conflict(f"exec command {rec.id} has already run")
            if rec.running:
                raise Conflict(f"exec command {rec.id} is already running")
            rec.running = True
        return rec

    def start(
        self, rec: ExecRecord, client: Any | None, tty: bool, console_size: tuple[int, int] | None = None
    ) -> ExecRun | None:
        """Start the process; with a hijacked `client`, stream to it (framed unless `tty`).

        Returns the running exec, or None when it failed to start: then an attached client got
        docker's error text on its stream, a detached start raises (400 for 126/127, else 500)."""
        c = rec.container
        attach = client is not None
        try:
            if c.monitor is None:
                raise RuntimeFailure(f"container {c.id} is not running", EXEC_FAILED_CODE)
            conn = c.monitor.exec(
                rec.id,
                self._process(rec, console_size),
                stdin=attach and rec.open_stdin,
                stdout=attach and rec.open_stdout,
                stderr=attach and rec.open_stderr,
                console_size=console_size or rec.console_size,
            )
        except RuntimeFailure as exc:
            message = exec_error_message(exc.message)
            self._finish(rec, exc.exit_code if exc.exit_code in (126, 127) else EXEC_FAILED_CODE)
            if not attach:
                raise (InvalidParameter if exc.exit_code in (126, 127) else DockyardError)(message) from None
            with contextlib.suppress(OSError):
                data = message.encode() + b"\r\n"
                client.sendall(data if tty else encode_frame(STDOUT, data))
            return None
        with rec.lock:
            rec.pid = conn.pid
        self.containers._event(c, f"exec_start: {' '.join([rec.entrypoint, *rec.args])}", execID=rec.id)
        run = ExecRun(self, rec, conn, client, tty)
        run.begin()
        return run

    def run_probe(self, c: Any, cmd: list[str], timeout: float, max_output: int) -> tuple[int | None, str]:
        """A health probe: an exec as the container's user, its output (stdout and stderr, at most
        `max_output` bytes, "..." when cut) and exit code; None as the code when it outlived
        `timeout` (then it is killed). Events see it like any exec, as in docker; its record is
        dropped afterwards (one probe a second would otherwise pile up records for ever)."""
        rec = self.create(c.id, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
        try:
            return self._probe(c, self.prepare_start(rec.id), timeout, max_output)
        finally:
            with self._lock:
                self._execs.pop(rec.id, None)

    def _probe(self, c: Any, rec: ExecRecord, timeout: float, max_output: int) -> tuple[int | None, str]:
        sink = _ProbeOutput(max_output)
        run = self.start(rec, sink, tty=False)
        if run is None:  # could not start (126/127): what docker reports is the start error
            return -1, sink.text().rstrip("\r\n")
        if not run.client_done.wait(timeout):
            with contextlib.suppress(Exception):
                c.monitor.kill(9, exec_id=rec.id)
            run.client_done.wait(5)
            return None, sink.text()
        return rec.exit_code, sink.text()

    def _finish(self, rec: ExecRecord, code: int) -> None:
        with rec.lock:
            rec.running = False
            rec.exit_code = code
        self.containers._event(rec.container, "exec_die", execID=rec.id, exitCode=str(code))

    # ------------------------------------------------------------------ the OCI process
    def _process(self, rec: ExecRecord, console_size: tuple[int, int] | None) -> dict[str, Any]:
        """The container's own process (caps, rlimits, user...) with the exec's overrides, as moby's
        ContainerExecStart + execSetPlatformOpt build it."""
        from dockyard.runtime.spec import container_env
        from dockyard.util.fs import read_json

        c = rec.container
        spec = read_json(c.bundle / "config.json") or {}
        process: dict[str, Any] = dict(spec.get("process") or {})
        hostname = c.config.get("Hostname") or c.id[:12]
        env = container_env(list(c.config.get("Env") or []), hostname, rec.tty)
        process.update({
            "args": [rec.entrypoint, *rec.args], "env": _replace_or_append(env, rec.env),
            "cwd": rec.working_dir or "/", "terminal": rec.tty,
        })  # fmt: skip
        if rec.user:
            process["user"] = self._resolve_user(rec)
        if rec.privileged:
            from dockyard.runtime.builtin.caps import all_capabilities

            caps = all_capabilities()  # those the daemon itself holds, as for `run --privileged`
            process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps}
        size = console_size or rec.console_size
        if rec.tty and size:
            process["consoleSize"] = {"height": size[0], "width": size[1]}
        else:
            process.pop("consoleSize", None)
        return process

    @staticmethod
    def _resolve_user(rec: ExecRecord) -> dict[str, Any]:
        from dockyard.runtime.user import UserLookupError, resolve_user

        try:
            user = resolve_user(str(rec.container.rootfs), rec.user)
        except UserLookupError as exc:
            raise InvalidParameter(str(exc)) from None
        entry: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            entry["additionalGids"] = user.additional_gids
        return entry


class ExecRun:
    """A started exec: pumps the monitor's stream to the (optional) client until the exit."""

    def __init__(self, service: ExecService, rec: ExecRecord, conn: Any, client: Any | None, tty: bool) -> None:
        self.service = service
        self.rec = rec
        self.conn = conn
        self.client = client
        self.tty = tty
        self.client_done = threading.Event()  # the client has what it will get (exit, detach, hang-up)
        if client is None:
            self.client_done.set()

    def begin(self) -> None:
        threading.Thread(target=self._pump_output, name=f"exec-{self.rec.id[:12]}", daemon=True).start()
        if self.client is not None and self.rec.open_stdin:
            threading.Thread(target=self._pump_input, daemon=True).start()

    def _pump_output(self) -> None:
        """Read to the end even after the client left: the exit code comes last."""
        try:
            for kind, data in self.conn:
                if kind == CONTROL or not data or self.client_done.is_set():
                    continue
                try:
                    self.client.sendall(data if self.tty else encode_frame(kind, data))
                except OSError:
                    self.client_done.set()  # hung up: the process keeps running, output is dropped
        finally:
            self.conn.close()
            code = self.conn.exit_code
            self.service._finish(self.rec, KILLED_CODE if code is None else code)
            self.client_done.set()

    def _pump_input(self) -> None:
        """Client bytes → the process's stdin; EOF (half-close or hang-up) closes it. With a tty the
        detach keys end the client's session and leave the process running."""
        from dockyard.daemon.attach import parse_detach_keys

        keys = parse_detach_keys(self.rec.detach_keys or None) if self.tty else b""
        matched = 0
        try:
            while not self.client_done.is_set():
                data = self.client.recv(65536)
                if not data:
                    break
                for byte in data if keys else b"":
                    matched = matched + 1 if byte == keys[matched] else (1 if byte == keys[0] else 0)
                    if matched == len(keys):
                        self.client_done.set()
                        return
                self.conn.send_stdin(data)
        except (OSError, ValueError) as exc:
            log.debug("exec input ended: %s", exc)
        finally:
            self.conn.close_stdin()


class _ProbeOutput:
    """Stands in for a hijacked client: keeps what a probe writes, up to a limit (moby's limitedBuffer)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def sendall(self, frame: bytes) -> None:
        payload = frame[8:]  # one multiplexed frame per call: drop its header
        room = self.limit - len(self.data)
        self.data += payload[: max(room, 0)]
        self.truncated = self.truncated or len(payload) > room

    def text(self) -> str:
        return self.data.decode(errors="replace") + ("..." if self.truncated else "")


def exec_error_message(message: str) -> str:
    """docker's text for an exec that failed to start:
    `OCI runtime exec failed: exec failed: unable to start container process: <why>: unknown`."""
    if _START_MARKER in message:
        detail = message.split(_START_MARKER, 1)[1].removesuffix(": unknown")
        return f"OCI runtime exec failed: exec failed: {_START_MARKER}{detail}: unknown"
    if not message.startswith("OCI runtime exec failed"):
        message = f"OCI runtime exec failed: {message}"
    return message if message.endswith(": unknown") else message + ": unknown"


def _require_running(c: Any) -> None:
    if not c.running or c.monitor is None:
        raise Conflict(f"container {c.id} is not running")
    if c.state.get("Paused"):
        raise Conflict(f"Container {c.id} is paused, unpause the container before exec")


def _replace_or_append(env: list[str], overrides: list[str]) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: KEY=V replaces KEY, a bare KEY removes it."""
    merged: dict[str, str | None] = {entry.split("=", 1)[0]: entry for entry in env}
    for entry in overrides:
        key, eq, _ = entry.partition("=")
        merged[key] = entry if eq else None
    return [entry for entry in merged.values() if entry is not None]


def _console_size(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1]) if value[0] and value[1] else None
    return None
