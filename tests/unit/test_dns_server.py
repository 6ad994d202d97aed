"""The embedded DNS server in a real network namespace, over UDP and TCP, with a fake upstream resolver.

All traffic stays on loopback: the clients talk to 127.0.0.11 inside a namespace this test creates, and
the "host resolver" is a fake one on 127.0.0.99:53 in the host's namespace.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.network import dns, netns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
UPSTREAM = "127.0.0.99"
UPSTREAM_ANSWER = "192.0.2.7"  # TEST-NET-1: never contacted, only carried in an answer


def _query(name: str, qid: int = 0x4242) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", dns.TYPE_A, 1)


def _addresses(reply: bytes) -> list[str]:
    """The A records of a reply built like ours (question, then compressed-name answers)."""
    count = struct.unpack("!H", reply[6:8])[0]
    _, _, _, end = dns.parse_query(reply)
    return [socket.inet_ntoa(reply[end + 12 + i * 16 : end + 16 + i * 16]) for i in range(count)]


class FakeUpstream:
    """Answers every query with UPSTREAM_ANSWER, over UDP and TCP, on UPSTREAM:53."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((UPSTREAM, 53))
        self.tcp.bind((UPSTREAM, 53))
        self.tcp.listen(4)
        self.udp.settimeout(0.1)  # the serving threads look at `stopped` this often
        self.tcp.settimeout(0.1)
        self.stopped = threading.Event()
        self.protocols: list[str] = []
        self.threads = [threading.Thread(target=serve, daemon=True) for serve in (self._udp, self._tcp)]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _answer(packet: bytes) -> bytes:
        _, _, qtype, end = dns.parse_query(packet)
        return dns.build_answer(packet, end, qtype, [UPSTREAM_ANSWER])

    def _udp(self) -> None:
        while not self.stopped.is_set():
            try:
                packet, peer = self.udp.recvfrom(4096)
            except TimeoutError:
                continue
            self.protocols.append("udp")
            self.udp.sendto(self._answer(packet), peer)

    def _tcp(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                size = struct.unpack("!H", conn.recv(2))[0]
                packet = conn.recv(size)
                self.protocols.append("tcp")
                answer = self._answer(packet)
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    def close(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, FakeUpstream]]:
    path = tmp_path / f"ns-{uuid.uuid4().hex[:8]}"
    upstream = FakeUpstream()
    server = dns.DnsServer(lambda _cid, name: ["10.1.2.3"] if name == "web" else None, upstreams=[UPSTREAM])
    netns.create(path)
    try:
        server.add("c1", path)
        yield path, upstream
    finally:
        server.close()
        netns.remove(path)
        upstream.close()


def _udp_ask(name: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(_query(name), (dns.DNS_ADDRESS, 53))
        return s.recv(4096)


def _tcp_ask(*names: str) -> list[bytes]:
    """Several queries on one connection, as RFC 7766 allows."""
    replies = []
    with socket.create_connection((dns.DNS_ADDRESS, 53), timeout=5) as s:
        for i, name in enumerate(names):
            query = _query(name, qid=i + 1)
            s.sendall(struct.pack("!H", len(query)) + query)
            size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
            replies.append(s.recv(size, socket.MSG_WAITALL))
    return replies


def test_known_names_over_udp_and_tcp(served) -> None:  # type: ignore[no-untyped-def]
    path, upstream = served
    assert _addresses(netns.run_in(path, lambda: _udp_ask("web"))) == ["10.1.2.3"]
    first, second = netns.run_in(path, lambda: _tcp_ask("web", "web"))
    assert _addresses(first) == _addresses(second) == ["10.1.2.3"]
    assert struct.unpack("!H", second[:2])[0] == 2  # each answer carries its own query's id
    assert upstream.protocols == []


def test_other_names_are_forwarded_over_the_client_s_protocol(served) -> None:  # type: ignore[no-untyped-def]
    path, upstream = served
    assert _addresses(netns.run_in(path, lambda: _udp_ask("elsewhere.example"))) == [UPSTREAM_ANSWER]
    (reply,) = netns.run_in(path, lambda: _tcp_ask("elsewhere.example"))
    assert _addresses(reply) == [UPSTREAM_ANSWER]
    assert upstream.protocols == ["udp", "tcp"]
