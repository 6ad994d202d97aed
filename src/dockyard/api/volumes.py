"""Volume routes of the Engine API: list, create, inspect, remove, prune (docker's shapes)."""

from __future__ import annotations

from typing import Any

from dockyard.api.http import Request, Response, json_response
from dockyard.api.router import Router
from dockyard.errors import InvalidParameter


def register(router: Router, daemon: Any) -> None:
    svc = daemon.volumes

    @router.route("GET", "/volumes")
    def list_(req: Request) -> Response:
        return json_response(svc.list(req.json_filters()))

    @router.route("POST", "/volumes/create")
    def create(req: Request) -> Response:
        body = req.json(default={})
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: expected an object")
        volume = svc.create(
            name=body.get("Name") or "",
            driver=body.get("Driver") or "",
            driver_opts=body.get("DriverOpts"),
            labels=body.get("Labels"),
        )
        return json_response(volume, 201)

    @router.route("POST", "/volumes/prune")
    def prune(req: Request) -> Response:
        return json_response(svc.prune(req.json_filters(), req.api_version))

    @router.route("GET", "/volumes/{name}")
    def inspect(req: Request) -> Response:
        return json_response(svc.inspect(req.params["name"]))

    @router.route("DELETE", "/volumes/{name}")
    def remove(req: Request) -> Response:
        svc.remove(req.params["name"], force=req.flag("force"))
        return Response(204)
