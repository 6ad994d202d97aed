"""The userland proxy (as docker-proxy): forwards connections to published ports from the host's own
addresses (loopback, which DNAT cannot reach) to the container.

Runs as its own small process per container, in its own session, so published ports keep working
while the daemon restarts. The daemon binds the listening sockets itself (so "port is already
allocated" is reported synchronously) and hands them over as inherited file descriptors; the
process is started with `python -m dockyard.network.proxy SPEC_JSON`, SPEC being a list of
{"fd": n, "proto": "tcp"|"udp", "target": [ip, port]}. TCP payload moves with splice(2) through a pipe,
never through Python buffers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from dockyard.errors import DockyardError

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031
UDP_IDLE = 90.0


# ------------------------------------------------------------------ daemon side
def bind_listener(proto: str, host_ip: str, host_port: int) -> socket.socket:
    """Bind (and for TCP listen on) host_ip:host_port; port 0 picks an ephemeral port."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip or "0.0.0.0", host_port))
        if proto == "tcp":
            sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def spawn(listeners: list[tuple[socket.socket, str, tuple[str, int]]], pid_file: Path, log_file: Path) -> int:
    """Start the proxy process for these (socket, proto, target) triples; returns its pid."""
    spec = [{"fd": s.fileno(), "proto": proto, "target": list(target)} for s, proto, target in listeners]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.network.proxy", json.dumps(spec)],
            pass_fds=[s.fileno() for s, _, _ in listeners],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
        )
    pid_file.write_text(str(proc.pid))
    # The proxy is reaped by init once we are gone; reap it here when it exits while we live.
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc.pid


def is_proxy(pid: int) -> bool:
    try:
        return b"dockyard.network.proxy" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop(pid_file: Path) -> None:
    """Stop the proxy recorded in pid_file, if it is still ours."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    if is_proxy(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not is_proxy(pid):
                break
            time.sleep(0.01)
    pid_file.unlink(missing_ok=True)


# ------------------------------------------------------------------ proxy side
def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Move bytes src -> dst with splice until EOF, then half-close dst."""
    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError):  # a bigger pipe moves more per splice (fewer system calls)
        fcntl.fcntl(write_end, F_SETPIPE_SZ, CHUNK)
    try:
        while True:
            n = os.splice(src.fileno(), write_end, CHUNK)
            if n == 0:
                break
            while n:
                n -= os.splice(read_end, dst.fileno(), n)
    except OSError as exc:
        if exc.errno not in (errno.ECONNRESET, errno.EPIPE, errno.EBADF, errno.ENOTCONN):
            print(f"proxy: {exc}", file=sys.stderr)
    finally:
        os.close(read_end)
        os.close(write_end)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _serve_tcp(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connect_tcp, args=(client, target), daemon=True).start()


def _connect_tcp(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        backend = socket.create_connection(target, timeout=10)
        backend.settimeout(None)
    except OSError:
        client.close()
        return
    for s in (client, backend):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    other = threading.Thread(target=_pump, args=(backend, client), daemon=True)
    other.start()
    _pump(client, backend)
    other.join()
    client.close()
    backend.close()


def _serve_udp(listener: socket.socket, target: tuple[str, int]) -> None:
    """One connected socket per client address, dropped after UDP_IDLE seconds of silence."""
    flows: dict[tuple[str, int], socket.socket] = {}
    lock = threading.Lock()

    def replies(peer: tuple[str, int], backend: socket.socket) -> None:
        backend.settimeout(UDP_IDLE)
        try:
            while True:
                listener.sendto(backend.recv(65535), peer)
        except OSError:
            pass
        finally:
            with lock:
                flows.pop(peer, None)
            backend.close()

    while True:
        data, peer = listener.recvfrom(65535)
        with lock:
            backend = flows.get(peer)
            if backend is None:
                backend = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                backend.connect(target)
                flows[peer] = backend
                threading.Thread(target=replies, args=(peer, backend), daemon=True).start()
        with contextlib.suppress(OSError):
            backend.send(data)


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threads = []
    for entry in spec:
        kind = socket.SOCK_STREAM if entry["proto"] == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind, fileno=entry["fd"])
        target = (entry["target"][0], int(entry["target"][1]))
        serve = _serve_tcp if entry["proto"] == "tcp" else _serve_udp
        threads.append(threading.Thread(target=serve, args=(sock, target), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


def port_in_use_error(
    endpoint: str, endpoint_id: str, proto: str, host_ip: str, port: int, ours: bool
) -> DockyardError:
    """docker's wording for a host port that cannot be bound."""
    prefix = f"driver failed programming external connectivity on endpoint {endpoint} ({endpoint_id}): "
    if ours:
        return DockyardError(f"{prefix}Bind for {host_ip or '0.0.0.0'}:{port} failed: port is already allocated")
    return DockyardError(
        f"{prefix}Error starting userland proxy: listen {proto}4 {host_ip or '0.0.0.0'}:{port}: "
        "bind: address already in use"
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
