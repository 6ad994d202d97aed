"""The Engine API HTTP layer: version prefixes, docker's JSON errors, chunked bodies, hijack, streams."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.api.http import HIJACKED, Request, Response, StreamResponse, UnixAPIServer, json_response
from dockyard.api.router import Router
from dockyard.errors import Conflict, InvalidParameter


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    router = Router()

    @router.route("GET", "/things/{id}/json")
    def thing(req: Request) -> Response:
        if req.params["id"] == "busy":
            raise Conflict("thing busy is in use")
        return json_response({"id": req.params["id"], "version": req.api_version, "all": req.flag("all")})

    @router.route("POST", "/echo")
    def echo(req: Request) -> Response:
        return json_response(req.json())

    @router.route("GET", "/images/{name:.+}/json")
    def image(req: Request) -> Response:
        return json_response({"name": req.params["name"]})

    @router.route("GET", "/stream")
    def stream(req: Request) -> StreamResponse:
        return StreamResponse(iter([b"one\n", b"two\n"]))

    @router.route("POST", "/hijack")
    def hijack(req: Request) -> object:
        sock = req.hijack("application/vnd.docker.raw-stream")
        data = b""
        while chunk := sock.recv(100):
            data += chunk
        sock.sendall(b"got:" + data)
        sock.shutdown_write()
        return HIJACKED

    @router.route("GET", "/bad")
    def bad(req: Request) -> Response:
        raise InvalidParameter("bad thing")

    path = str(tmp_path / "api.sock")
    srv = UnixAPIServer(path, router.dispatch, {"Api-Version": "1.47"})
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield path
    srv.shutdown()
    srv.server_close()


def request(path: str, method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    conn = UnixHTTPConnection(path)
    conn.request(method, url, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp, data


def test_socket_not_world_accessible(server):
    assert Path(server).stat().st_mode & 0o007 == 0


def test_bare_and_versioned_paths(server):
    resp, data = request(server, "GET", "/things/a/json?all=1")
    assert resp.status == 200 and json.loads(data) == {"id": "a", "version": "1.47", "all": True}
    assert resp.getheader("Api-Version") == "1.47"
    resp, data = request(server, "GET", "/v1.41/things/b/json")
    assert json.loads(data)["version"] == "1.41"


def test_version_bounds(server):
    resp, data = request(server, "GET", "/v1.12/things/a/json")
    assert resp.status == 400 and "too old" in json.loads(data)["message"]
    resp, data = request(server, "GET", "/v9.99/things/a/json")
    assert resp.status == 400 and "too new" in json.loads(data)["message"]


def test_errors_are_docker_json(server):
    resp, data = request(server, "GET", "/nope")
    assert resp.status == 404 and json.loads(data) == {"message": "page not found"}
    resp, data = request(server, "GET", "/things/busy/json")
    assert resp.status == 409 and json.loads(data) == {"message": "thing busy is in use"}
    resp, data = request(server, "GET", "/bad")
    assert resp.status == 400
    resp, data = request(server, "POST", "/echo", b"{not json")
    assert resp.status == 400 and "invalid JSON" in json.loads(data)["message"]


def test_names_with_slashes(server):
    _, data = request(server, "GET", "/images/localhost:5000/a/b:1/json")
    assert json.loads(data) == {"name": "localhost:5000/a/b:1"}


def test_chunked_request_body(server):
    conn = UnixHTTPConnection(server)
    conn.putrequest("POST", "/echo")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for part in (b'{"a": ', b"[1, 2]}"):
        conn.send(b"%x\r\n%s\r\n" % (len(part), part))
    conn.send(b"0\r\n\r\n")
    resp = conn.getresponse()
    assert json.loads(resp.read()) == {"a": [1, 2]}


def test_stream_response_is_chunked(server):
    resp, data = request(server, "GET", "/stream")
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert data == b"one\ntwo\n"


def test_keep_alive_serves_several_requests(server):
    conn = UnixHTTPConnection(server)
    for name in ("x", "y", "z"):
        conn.request("GET", f"/things/{name}/json")
        assert json.loads(conn.getresponse().read())["id"] == name
    conn.close()


def test_hijack_upgrade_and_half_close(server):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(server)
    sock.sendall(b"POST /hijack HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly")
    sock.sendall(b" late")
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"Upgrade: tcp" in head
    assert body == b"got:early late"
