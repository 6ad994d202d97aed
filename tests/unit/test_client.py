"""The Engine API client against a tiny fake daemon on a temporary unix socket."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from dockyard.client.api import APIClient, encode_filters
from dockyard.client.autostart import ensure_daemon
from dockyard.client.errors import APIError, DaemonUnavailable
from dockyard.client.streams import encode_frame, iter_frames, iter_json_messages
from dockyard.client.transport import encode_params, parse_host, percent_encode

Handler = Callable[[dict, socket.socket], None]


def _read_request(sock: socket.socket) -> dict:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return {}
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    request_line, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    if "chunked" in headers.get("transfer-encoding", ""):
        while not body.endswith(b"0\r\n\r\n"):
            body += sock.recv(65536)
        decoded, rest = b"", body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2 :]
        body = decoded
    else:
        length = int(headers.get("content-length", 0))
        while len(body) < length:
            body += sock.recv(65536)
    method, target, _ = request_line.split(" ")
    path, _, query = target.partition("?")
    return {"method": method, "path": path, "query": query, "headers": headers, "body": body}


def respond(
    sock: socket.socket, status: int, body: bytes = b"", content_type: str = "application/json", chunked: bool = False
) -> None:
    reason = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found", 500: "Internal Server Error"}
    head = f"HTTP/1.1 {status} {reason.get(status, 'X')}\r\nContent-Type: {content_type}\r\nApi-Version: 1.47\r\n"
    if chunked:
        sock.sendall(head.encode() + b"Transfer-Encoding: chunked\r\n\r\n")
        return
    sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def send_chunk(sock: socket.socket, data: bytes) -> None:
    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


class FakeDaemon:
    """Serves each connection with `handler(request, socket)` and records requests."""

    def __init__(self, handler: Handler) -> None:
        self.dir = tempfile.mkdtemp(prefix=f"dockyard-test-{uuid.uuid4().hex[:8]}-")
        self.path = os.path.join(self.dir, "d.sock")
        self.requests: list[dict] = []
        outer = self

        class _Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                request = _read_request(self.request)
                if request:
                    outer.requests.append(request)
                    handler(request, self.request)

        self.server = socketserver.ThreadingUnixStreamServer(self.path, _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if os.path.exists(self.path):
            os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def daemon() -> Iterator[Callable[[Handler], tuple[FakeDaemon, APIClient]]]:
    started: list[FakeDaemon] = []

    def start(handler: Handler) -> tuple[FakeDaemon, APIClient]:
        fake = FakeDaemon(handler)
        started.append(fake)
        return fake, APIClient(f"unix://{fake.path}", timeout=10)

    try:
        yield start
    finally:
        for fake in started:
            fake.close()


def test_parse_host() -> None:
    assert parse_host("unix:///run/x.sock").address == "/run/x.sock"
    tcp = parse_host("tcp://127.0.0.1:2376")
    assert (tcp.scheme, tcp.address, tcp.port, tcp.url) == ("tcp", "127.0.0.1", 2376, "tcp://127.0.0.1:2376")
    assert parse_host("localhost:1234").port == 1234
    with pytest.raises(ValueError):
        parse_host("ssh://host")


@pytest.mark.parametrize("text", ["", "plain", "a b&c=d", "é€/:@?#%+", "x" * 3 + "\u00e9\t\n", "[1,2]"])
def test_escaping_matches_urllib(text: str) -> None:
    """Our escaping (kept off urllib.parse for CLI start-up time) must give urllib's bytes."""
    from urllib.parse import quote, urlencode

    assert percent_encode(text, "/:@") == quote(text, safe="/:@")
    assert percent_encode(text) == quote(text, safe="")
    pairs = [("k " + text, text), ("x", text), ("x", "y")]
    assert encode_params(pairs) == urlencode(pairs)


def test_ping_and_versioned_paths(daemon) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        if req["path"] == "/_ping":
            respond(sock, 200, b"OK", "text/plain")
        else:
            respond(sock, 200, json.dumps({"ApiVersion": "1.47", "path": req["path"]}).encode())

    fake, client = daemon(handler)
    headers = client.ping()
    assert headers["Api-Version"] == "1.47"
    assert client.version()["path"] == "/v1.47/version"
    assert fake.requests[0]["path"] == "/_ping"


def test_json_error_becomes_api_error(daemon) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 404, b'{"message":"No such container: nope"}')

    _, client = daemon(handler)
    with pytest.raises(APIError) as info:
        client.inspect_container("nope")
    assert info.value.status == 404
    assert info.value.is_not_found
    assert str(info.value) == "Error response from daemon: No such container: nope"


def test_query_parameters_and_filters(daemon) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 200, b"[]")

    fake, client = daemon(handler)
    client.containers(all=True, limit=3, filters={"status": ["running"], "label": ["a=b"]})
    query = fake.requests[0]["query"]
    assert "all=1" in query and "limit=3" in query
    from urllib.parse import parse_qs

    filters = json.loads(parse_qs(query)["filters"][0])
    assert filters == {"status": {"running": True}, "label": {"a=b": True}}
    assert encode_filters(None) is None


def test_create_sends_json_body_and_name(daemon) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 201, json.dumps({"Id": "abc", "Warnings": []}).encode())

    fake, client = daemon(handler)
    assert client.create_container({"Image": "busybox", "Cmd": ["true"]}, name="web")["Id"] == "abc"
    request = fake.requests[0]
    assert request["path"] == "/v1.47/containers/create" and request["query"] == "name=web"
    assert json.loads(request["body"]) == {"Image": "busybox", "Cmd": ["true"]}
    assert request["headers"]["content-type"] == "application/json"


def test_chunked_json_lines_stream(daemon) -> None:
    messages = [
        {"status": "Pulling from library/busybox", "id": "latest"},
        {"status": "Downloading", "progressDetail": {"current": 5, "total": 10}, "id": "abc"},
        {"errorDetail": {"message": "boom"}, "error": "boom"},
    ]

    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 200, chunked=True)
        payload = b"".join(json.dumps(m).encode() + b"\r\n" for m in messages)
        for i in range(0, len(payload), 7):  # split mid-object on purpose
            send_chunk(sock, payload[i : i + 7])
        send_chunk(sock, b"")

    fake, client = daemon(handler)
    got = list(client.pull_image("busybox", "latest").iter_json())
    assert got == messages
    assert fake.requests[0]["headers"]["x-registry-auth"] == "e30="


def test_chunked_request_body_from_file(daemon, tmp_path) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 200, json.dumps({"size": len(req["body"])}).encode() + b"\n")

    fake, client = daemon(handler)
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(os.urandom(200_000))
    with open(tar, "rb") as f:
        out = list(client.import_image(f, repository="img", tag="v1", changes=['CMD ["sh"]']).iter_json())
    assert out == [{"size": 200_000}]
    request = fake.requests[0]
    assert request["headers"]["transfer-encoding"] == "chunked"
    assert "fromSrc=-" in request["query"] and "repo=img" in request["query"]


def test_multiplexed_logs_demux(daemon) -> None:
    frames = [(1, b"hello\n"), (2, b"oops\n"), (1, b"x" * 70000)]

    def handler(req: dict, sock: socket.socket) -> None:
        body = b"".join(encode_frame(s, d) for s, d in frames)
        respond(sock, 200, body, "application/vnd.docker.multiplexed-stream")

    _, client = daemon(handler)
    got: dict[int, bytes] = {1: b"", 2: b""}
    for stream, data in client.logs("c1").iter_output(tty=False):
        got[stream] += data
    assert got[1] == b"hello\n" + b"x" * 70000
    assert got[2] == b"oops\n"


def test_iter_frames_stops_on_truncation() -> None:
    import io

    data = encode_frame(1, b"abc") + encode_frame(2, b"defgh")[:10]
    assert list(iter_frames(io.BytesIO(data).read)) == [(1, b"abc"), (2, b"de")]


def test_json_messages_without_newlines() -> None:
    assert list(iter_json_messages([b'{"a":1}{"b"', b':2}\n{"c":"\xc3', b'\xa9"}'])) == [{"a": 1}, {"b": 2}, {"c": "é"}]
    with pytest.raises(ValueError):
        list(iter_json_messages([b'{"a":']))


def test_hijack_upgrade_with_half_close(daemon) -> None:
    """The daemon echoes stdin as stdout frames after our half-close, then sends a final frame."""

    def handler(req: dict, sock: socket.socket) -> None:
        assert req["headers"]["upgrade"] == "tcp" and req["headers"]["connection"] == "Upgrade"
        sock.sendall(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + encode_frame(2, b"early")
        )
        received = b""
        while chunk := sock.recv(4096):  # until the client half-closes
            received += chunk
        sock.sendall(encode_frame(1, received) + encode_frame(1, b"|done"))
        sock.close()

    fake, client = daemon(handler)
    conn = client.attach_container("c1", stdin=True)
    try:
        assert conn.multiplexed
        conn.sendall(b"hello ")
        conn.sendall(b"world")
        conn.close_write()
        output = list(conn.iter_output())
    finally:
        conn.close()
    assert output == [(2, b"early"), (1, b"hello world"), (1, b"|done")]
    assert "stdin=1" in fake.requests[0]["query"]


def test_hijack_error_is_api_error(daemon) -> None:
    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 404, b'{"message":"No such container: x"}')

    _, client = daemon(handler)
    with pytest.raises(APIError, match="No such container: x"):
        client.attach_container("x")


def test_wait_opened_before_the_exit(daemon) -> None:
    release = threading.Event()

    def handler(req: dict, sock: socket.socket) -> None:
        respond(sock, 200, chunked=True)  # headers at once, body when the container exits
        release.wait(5)
        send_chunk(sock, b'{"StatusCode":3,"Error":null}\n')
        send_chunk(sock, b"")

    fake, client = daemon(handler)
    pending = client.open_wait("c1", "next-exit")
    assert fake.requests[0]["query"] == "condition=next-exit"
    release.set()
    assert pending.json() == {"StatusCode": 3, "Error": None}


def test_unreachable_daemon(tmp_path) -> None:
    client = APIClient(f"unix://{tmp_path}/missing.sock")
    with pytest.raises(DaemonUnavailable, match="Is the dockyard daemon running"):
        client.ping()


def test_autostart_only_for_default_socket(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("DOCKYARD_NO_AUTOSTART", raising=False)
    spawned = []
    monkeypatch.setattr("dockyard.client.autostart.spawn_daemon", lambda: spawned.append(1))
    assert ensure_daemon(parse_host(f"unix://{tmp_path}/other.sock")) is False
    assert spawned == []
