"""The embedded DNS server of user-defined networks (docker's 127.0.0.11).

One UDP socket per container, bound to 127.0.0.11:53 *inside* the container's network namespace
(a socket belongs to the namespace it was created in), all served by one selector thread in the
daemon. Names known on the container's networks (container names, aliases, short ids) are answered
here; anything else is forwarded from the host's namespace to the host's resolvers.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from dockyard.network import netns

log = logging.getLogger("dockyard.dns")

DNS_ADDRESS = "127.0.0.11"
TYPE_A = 1
CLASS_IN = 1
TTL = 600
RCODE_NXDOMAIN = 3
RCODE_SERVFAIL = 2

# resolve(container_id, name) -> addresses, [] for "known but no address", None for "not ours"
Resolver = Callable[[str, str], "list[str] | None"]


def parse_query(packet: bytes) -> tuple[int, str, int, int]:
    """(id, lower-cased name without the trailing dot, qtype, end offset of the question)."""
    if len(packet) < 12:
        raise ValueError("short packet")
    qid, _flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, pos = [], 12
    while True:
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed question")
        labels.append(packet[pos : pos + length].decode("ascii", "replace"))
        pos += length
    qtype, _qclass = struct.unpack("!HH", packet[pos : pos + 4])
    return qid, ".".join(labels).lower(), qtype, pos + 4


def build_answer(packet: bytes, question_end: int, qtype: int, addresses: list[str] | None) -> bytes:
    """A response to `packet`: A records for `addresses`, NXDOMAIN when None."""
    qid, flags = struct.unpack("!HH", packet[:4])
    rd = flags & 0x0100
    answers = [a for a in addresses or [] if qtype == TYPE_A]
    rcode = RCODE_NXDOMAIN if addresses is None else 0
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0080 | rd | rcode, 1, len(answers), 0, 0)
    body = packet[12:question_end]
    for address in answers:
        body += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(address)
    return header + body


def host_nameservers(path: str = "/etc/resolv.conf") -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    return [parts[1] for parts in (line.split() for line in lines) if len(parts) >= 2 and parts[0] == "nameserver"]


class DnsServer:
    def __init__(self, resolve: Resolver, upstreams: list[str] | None = None) -> None:
        self.resolve = resolve
        self.upstreams = host_nameservers() if upstreams is None else upstreams
        self._selector = selectors.DefaultSelector()
        self._sockets: dict[str, socket.socket] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._loop, name="dns", daemon=True).start()

    def add(self, container_id: str, netns_path: Path) -> None:
        """Listen on 127.0.0.11:53 in the container's namespace (once: a second network reuses it)."""
        with self._lock:
            if container_id in self._sockets:
                return

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((DNS_ADDRESS, 53))
            sock.setblocking(False)
            return sock

        sock = netns.run_in(netns_path, make)
        with self._lock:
            self._sockets[container_id] = sock
            self._selector.register(sock, selectors.EVENT_READ, container_id)
        self._wake_w.send(b"x")

    def remove(self, container_id: str) -> None:
        with self._lock:
            sock = self._sockets.pop(container_id, None)
            if sock is not None:
                self._unregister(sock)
        self._wake_w.send(b"x")

    def _unregister(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()

    def _loop(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_r.recv(4096)
                    continue
                with contextlib.suppress(OSError):
                    packet, peer = key.fileobj.recvfrom(4096)  # type: ignore[union-attr]
                    self._handle(key.fileobj, key.data, packet, peer)  # type: ignore[arg-type]

    def _handle(self, sock: socket.socket, container_id: str, packet: bytes, peer: tuple[str, int]) -> None:
        try:
            _, name, qtype, end = parse_query(packet)
        except (ValueError, IndexError, struct.error):
            return
        addresses = self.resolve(container_id, name)
        if addresses is not None:
            sock.sendto(build_answer(packet, end, qtype, addresses), peer)
        else:
            threading.Thread(target=self._forward, args=(sock, packet, peer, end, qtype), daemon=True).start()

    def _forward(self, sock: socket.socket, packet: bytes, peer: tuple[str, int], end: int, qtype: int) -> None:
        """Ask the host's resolvers (from the host namespace); NXDOMAIN when none answers."""
        for server in self.upstreams:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                up.settimeout(2)
                try:
                    up.sendto(packet, (server, 53))
                    reply = up.recv(65535)
                except OSError:
                    continue
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)
            return
        with contextlib.suppress(OSError):
            sock.sendto(build_answer(packet, end, qtype, None), peer)

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets.values():
                self._unregister(sock)
            self._sockets.clear()
