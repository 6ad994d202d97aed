"""`exec` and `attach`: run a process in a running container, or join the container's own stdio.

The flows follow docker/cli (exec.go, attach.go): inspect first, then the hijacked stream with raw
mode, resize on SIGWINCH and detach keys for a terminal; the exit code comes from exec inspect
(exec) or the container's wait (attach).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from dockyard.cli.common import Cli, isatty
from dockyard.cli.flags import FlagSet, StatusError

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DETACHED = "read escape sequence"


def exec_flagset(command: str = "exec") -> FlagSet:
    fs = FlagSet(
        command,
        "[OPTIONS] CONTAINER COMMAND [ARG...]",
        "Execute a command in a running container",
        interspersed=False,
        min_args=2,
    )
    return (
        fs.add("-d, --detach", help="Detached mode: run command in the background")
        .add("--detach-keys", "str", help="Override the key sequence for detaching a container")
        .add("-e, --env", "list", help="Set environment variables")
        .add("--env-file", "list", help="Read in a file of environment variables")
        .add("-i, --interactive", help="Keep STDIN open even if not attached")
        .add("--privileged", help="Give extended privileges to the command")
        .add("-t, --tty", help="Allocate a pseudo-TTY")
        .add("-u, --user", "str", help='Username or UID (format: "<name|uid>[:<group|gid>]")')
        .add("-w, --workdir", "str", help="Working directory inside the container")
    )


def attach_flagset(command: str = "attach") -> FlagSet:
    fs = FlagSet(
        command,
        "[OPTIONS] CONTAINER",
        "Attach local standard input, output, and error streams to a running container",
        min_args=1,
        max_args=1,
    )
    return (
        fs.add("--detach-keys", "str", help="Override the key sequence for detaching a container")
        .add("--no-stdin", help="Do not attach STDIN")
        .add("--sig-proxy", default=True, help="Proxy all received signals to the process")
    )


def exec_body(opts: Any, command: list[str]) -> dict[str, Any]:
    """The POST /containers/{id}/exec body docker's CLI sends."""
    from dockyard.cli.run import _env
    from dockyard.cli.streaming import terminal_size

    body: dict[str, Any] = {
        "User": opts.user, "Privileged": opts.privileged, "Tty": opts.tty,
        "AttachStdin": opts.interactive and not opts.detach, "AttachStdout": not opts.detach,
        "AttachStderr": not opts.detach, "Detach": opts.detach, "DetachKeys": opts.detach_keys,
        "Env": _env(opts), "WorkingDir": opts.workdir, "Cmd": command,
    }  # fmt: skip
    size = terminal_size(1) if opts.tty else None
    if size:
        body["ConsoleSize"] = list(size)
    return body


def cmd_exec(cli: Cli, argv: list[str], name: str = "exec") -> int:
    from dockyard.client.errors import APIError

    opts, args = exec_flagset(name).parse(argv)
    container, command = args[0], args[1:]
    body = exec_body(opts, command)
    client = cli.client
    if body["AttachStdin"] and opts.tty and not isatty(0):
        raise StatusError(1, "the input device is not a TTY")
    try:
        client.inspect_container(container)
        exec_id = client.exec_create(container, body)["Id"]
        start = {"Detach": opts.detach, "Tty": opts.tty, "ConsoleSize": body.get("ConsoleSize")}
        if opts.detach:
            client.exec_start(exec_id, start)
            return 0
        conn = client.exec_start(exec_id, start)
        assert conn is not None
        if _stream(
            cli,
            conn,
            tty=opts.tty,
            stdin=body["AttachStdin"],
            detach_keys=opts.detach_keys or None,
            resize=lambda h, w: client.exec_resize(exec_id, h, w),
        ):
            raise StatusError(1, DETACHED)  # docker's CLI reports the escape as an error too
        code = int(client.exec_inspect(exec_id).get("ExitCode") or 0)
    except APIError as exc:
        raise StatusError(1, str(exc)) from exc
    if code:
        raise StatusError(code)
    return 0


def cmd_attach(cli: Cli, argv: list[str], name: str = "attach") -> int:
    from dockyard.client.errors import APIError

    opts, args = attach_flagset(name).parse(argv)
    container = args[0]
    client = cli.client
    try:
        info = client.inspect_container(container)
        state = info.get("State") or {}
        if not state.get("Running"):
            raise StatusError(1, "You cannot attach to a stopped container, start it first")
        if state.get("Paused"):
            raise StatusError(1, "You cannot attach to a paused container, unpause it first")
        config = info.get("Config") or {}
        tty = bool(config.get("Tty"))
        stdin = bool(config.get("OpenStdin")) and not opts.no_stdin
        if stdin and tty and not isatty(0):
            raise StatusError(1, "the input device is not a TTY")
        wait = client.open_wait(container)
        conn = client.attach_container(
            container, stdin=stdin, stdout=True, stderr=True, detach_keys=opts.detach_keys or None
        )
    except APIError as exc:
        raise StatusError(1, str(exc)) from exc
    restore = _proxy_signals(client, container) if opts.sig_proxy and not tty else (lambda: None)
    try:
        detached = _stream(
            cli,
            conn,
            tty=tty,
            stdin=stdin,
            detach_keys=opts.detach_keys or None,
            resize=lambda h, w: client.resize_container(container, h, w),
        )
    finally:
        restore()
    if detached:
        wait.close()
        raise StatusError(1, DETACHED)  # what docker attach prints (and its exit status)
    result = wait.json() or {}
    code = int(result.get("StatusCode", 0))
    if code:
        raise StatusError(code)
    return 0


def _proxy_signals(client: Any, container: str) -> Callable[[], None]:
    from dockyard.cli.streaming import proxy_signals

    return proxy_signals(lambda sig: client.kill_container(container, sig))


def _stream(
    cli: Cli, conn: Any, *, tty: bool, stdin: bool, detach_keys: str | None, resize: Callable[[int, int], None]
) -> bool:
    """Pump a hijacked stream both ways until the output ends; True when the user detached."""
    from dockyard.cli.streaming import copy_output, detach_key_bytes, forward_stdin, monitor_resize, raw_terminal

    keys = detach_key_bytes(detach_keys) if tty and stdin else b""
    detached = threading.Event()
    restore = monitor_resize(resize) if tty and isatty(1) else (lambda: None)
    try:
        with raw_terminal(0) if (tty and stdin) else contextlib.nullcontext():
            if stdin:
                forward_stdin(conn, detach_keys=keys, detached=detached)
            cli.out.flush()
            copy_output(conn.iter_output(tty), cli.out_binary, cli.err_binary)
    finally:
        restore()
        conn.close()
    return detached.is_set()
