"""GET /containers/{id}/attach/ws: a WebSocket client (wsproto, over the daemon's unix socket) sees the
container's output as binary messages and its messages reach the container's stdin."""

from __future__ import annotations

import socket
import time
import uuid

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Request, TextMessage


class WsClient:
    def __init__(self, socket_path: str, target: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(15)
        self.sock.connect(socket_path)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host="localhost", target=target)))
        assert any(isinstance(e, AcceptConnection) for e in self._events())

    def _events(self) -> list:
        data = self.sock.recv(65536)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def read_until(self, wanted: bytes, timeout: float = 15.0) -> bytes:
        seen = b""
        deadline = time.monotonic() + timeout
        while wanted not in seen and time.monotonic() < deadline:
            for event in self._events():
                if isinstance(event, BytesMessage):
                    seen += bytes(event.data)
                elif isinstance(event, TextMessage):
                    seen += event.data.encode()
                elif isinstance(event, CloseConnection):
                    return seen
        return seen

    def close(self) -> None:
        self.sock.close()


def test_attach_over_websocket(dy) -> None:  # type: ignore[no-untyped-def]
    name = f"ws-{uuid.uuid4().hex[:8]}"
    script = "echo ready; while read line; do echo got:$line; done"
    dy.out("run", "-d", "-i", "--name", name, "busybox", "sh", "-c", script)
    client = WsClient(str(dy.socket), f"/v1.47/containers/{name}/attach/ws?stream=1&stdin=1&stdout=1&logs=1")
    try:
        assert b"ready" in client.read_until(b"ready")  # logs=1: what it printed before we attached
        client.send(b"hello websocket\n")
        assert b"got:hello websocket" in client.read_until(b"got:hello websocket")
    finally:
        client.close()
    assert dy.out("inspect", "-f", "{{.State.Running}}", name).strip() == "true"  # leaving does not stop it
