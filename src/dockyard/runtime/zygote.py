"""A warm process that forks container monitors on the daemon's behalf.

Starting a fresh Python interpreter for every monitor costs ~50 ms (interpreter start plus the
runtime's imports) and ~9 MB of private memory. The zygote pays that once: it imports the monitor and
the runtime backends, then forks one child per container. A fork takes about a millisecond and the
child shares the zygote's pages copy-on-write, so each monitor's own memory is what it writes.

The daemon talks to the zygote over a socketpair: one request per monitor, the monitor's argv as JSON
plus two file descriptors (handshake pipe, monitor log) passed with SCM_RIGHTS. The zygote exits when
the daemon's end closes; monitors it forked are independent sessions and live on.
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import os
import signal
import socket
import sys

# Everything this process imports is in every monitor's memory: the daemon's side of the
# protocol (which needs subprocess, threading and logging) lives in zygote_client.py.
_MAX_REQUEST = 1 << 16
PRELOAD = (
    "dockyard.runtime.monitor",
    "dockyard.runtime.builtin.runtime",  # runc/crun monitors import oci_cli (and subprocess) when they need it
    "dockyard.runtime.jsonlog",
    "dockyard.util.fs",
    "dockyard.util.timefmt",
)


def preload() -> None:
    """Import what monitors need, and compile the default seccomp profile, before any fork."""
    for module in PRELOAD:
        with contextlib.suppress(ImportError):
            __import__(module)
    with contextlib.suppress(Exception):  # a cache only: monitors compile what is missing
        from dockyard.runtime.seccomp import warm_default

        warm_default()


def _serve(sock: socket.socket) -> None:
    """Zygote main loop: fork a monitor per request until the daemon hangs up."""
    preload()
    import dockyard.runtime.monitor as monitor

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    # Everything imported so far is shared with every monitor. Moving it to the GC's permanent
    # generation keeps the children's collections from touching (and so copying) those pages.
    gc.collect()
    gc.freeze()
    while True:
        fds = array.array("i")
        try:
            data, ancdata, _flags, _addr = sock.recvmsg(_MAX_REQUEST, socket.CMSG_LEN(2 * fds.itemsize))
        except InterruptedError:
            continue
        if not data:
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _become_monitor(sock, list(fds), request, monitor.main)
        for fd in fds:
            os.close(fd)
        sock.sendall(json.dumps({"pid": pid}).encode())


def _become_monitor(sock: socket.socket, fds: list[int], request: dict, monitor_main) -> None:
    """In the forked child: a clean session with the monitor's stdio, then the monitor itself."""
    code = 1
    try:
        sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        handshake, monitor_log = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(handshake, 1)
        os.dup2(monitor_log, 2)
        for fd in (devnull, handshake, monitor_log):
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        code = monitor_main(request["argv"], detached=True)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(socket.socket(fileno=int(sys.argv[1])))
