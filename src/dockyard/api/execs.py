"""Exec routes of the Engine API: create, start (hijacked unless Detach), resize, inspect."""

from __future__ import annotations

from typing import Any

from dockyard.api.containers import stream_type
from dockyard.api.http import HIJACKED, Request, Response, json_response
from dockyard.api.router import Router
from dockyard.errors import InvalidParameter


def register(router: Router, daemon: Any) -> None:
    svc = daemon.execs

    @router.route("POST", "/containers/{id}/exec")
    def create(req: Request) -> Response:
        body = req.json(default=None)
        if not isinstance(body, dict):
            raise InvalidParameter("No exec command specified")
        return json_response({"Id": svc.create(req.params["id"], body).id}, 201)

    @router.route("POST", "/exec/{id}/start")
    def start(req: Request) -> object:
        body = req.json(default=None) or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid exec start body")
        rec = svc.prepare_start(req.params["id"])
        size = body.get("ConsoleSize")
        console_size = (int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 and all(size) else None
        if body.get("Detach"):
            svc.start(rec, None, rec.tty, console_size)
            return Response(200, b"")
        tty = bool(body.get("Tty"))
        sock = req.hijack(stream_type(req, tty))
        run = svc.start(rec, sock, tty, console_size)
        if run is not None:
            run.client_done.wait()
        sock.shutdown_write()
        return HIJACKED

    @router.route("POST", "/exec/{id}/resize")
    def resize(req: Request) -> Response:
        svc.resize(req.params["id"], req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0)
        return Response(200, b"")

    @router.route("GET", "/exec/{id}/json")
    def inspect(req: Request) -> Response:
        return json_response(svc.inspect(req.params["id"]))
