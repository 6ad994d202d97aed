"""The embedded DNS server of user-defined networks (docker's 127.0.0.11).

One UDP socket and one TCP listener per container, bound to 127.0.0.11:53 *inside* the container's
network namespace (a socket belongs to the namespace it was created in), all served by one selector
thread in the daemon (a TCP connection gets a short-lived thread of its own: queries over TCP are few,
typically the retry of a truncated UDP answer). Names known on the container's networks (container
names, aliases, short ids) are answered here; anything else is forwarded from the host's namespace to
the host's resolvers, over the protocol the client used.
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
TCP_IDLE_TIMEOUT = 10.0  # a TCP client may send several queries; one silent this long is closed

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
        self._sockets: dict[str, list[socket.socket]] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._loop, name="dns", daemon=True).start()

    def add(self, container_id: str, netns_path: Path) -> None:
        """Listen on 127.0.0.11:53 in the container's namespace (once: a second network reuses it)."""
        with self._lock:
            if container_id in self._sockets:
                return

        def make() -> list[socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((DNS_ADDRESS, 53))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((DNS_ADDRESS, 53))
                tcp.listen(16)
            except OSError:
                udp.close()
                tcp.close()
                raise
            udp.setblocking(False)
            tcp.setblocking(False)
            return [udp, tcp]

        socks = netns.run_in(netns_path, make)
        with self._lock:
            self._sockets[container_id] = socks
            for sock in socks:
                self._selector.register(sock, selectors.EVENT_READ, container_id)
        self._wake_w.send(b"x")

    def remove(self, container_id: str) -> None:
        with self._lock:
            for sock in self._sockets.pop(container_id, []):
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
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(OSError):
                    if sock.type == socket.SOCK_STREAM:
                        conn, _ = sock.accept()
                        threading.Thread(target=self._serve_tcp, args=(conn, key.data), daemon=True).start()
                        continue
                    packet, peer = sock.recvfrom(4096)
                    self._handle(packet, key.data, lambda reply, s=sock, p=peer: s.sendto(reply, p))

    def _handle(self, packet: bytes, container_id: str, reply: Callable[[bytes], object], tcp: bool = False) -> None:
        """Answer `packet` through `reply`: from our names, else (in a thread) from the host's resolvers."""
        try:
            _, name, qtype, end = parse_query(packet)
        except (ValueError, IndexError, struct.error):
            return
        addresses = self.resolve(container_id, name)
        if addresses is not None:
            reply(build_answer(packet, end, qtype, addresses))
        elif tcp:  # already on a connection's own thread
            self._forward(packet, end, qtype, reply, tcp)
        else:
            threading.Thread(target=self._forward, args=(packet, end, qtype, reply, tcp), daemon=True).start()

    def _serve_tcp(self, conn: socket.socket, container_id: str) -> None:
        """RFC 7766: 2-byte length, message; as many queries as the client sends on the connection."""
        with conn:
            conn.settimeout(TCP_IDLE_TIMEOUT)
            with contextlib.suppress(OSError):
                while True:
                    packet = _recv_exact(conn, struct.unpack("!H", _recv_exact(conn, 2))[0])
                    self._handle(packet, container_id, lambda data: conn.sendall(_framed(data)), tcp=True)

    def _forward(self, packet: bytes, end: int, qtype: int, reply: Callable[[bytes], object], tcp: bool) -> None:
        """Ask the host's resolvers (from the host namespace) over the client's protocol; NXDOMAIN
        when none answers."""
        for server in self.upstreams:
            kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, kind) as up:
                up.settimeout(2)
                try:
                    up.connect((server, 53))
                    if tcp:
                        up.sendall(_framed(packet))
                        answer = _recv_exact(up, struct.unpack("!H", _recv_exact(up, 2))[0])
                    else:
                        up.send(packet)
                        answer = up.recv(65535)
                except OSError:
                    continue
            with contextlib.suppress(OSError):
                reply(answer)
            return
        with contextlib.suppress(OSError):
            reply(build_answer(packet, end, qtype, None))

    def close(self) -> None:
        with self._lock:
            for socks in self._sockets.values():
                for sock in socks:
                    self._unregister(sock)
            self._sockets.clear()


def _framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes; ConnectionError when the peer closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed before the whole message")
        data += chunk
    return data
