"""Network routes of the Engine API (docker's paths and JSON shapes)."""

from __future__ import annotations

from typing import Any

from dockyard.api.http import Request, Response, json_response
from dockyard.api.router import Router
from dockyard.errors import InvalidParameter


def register(router: Router, daemon: Any) -> None:
    svc = daemon.networks

    @router.route("GET", "/networks")
    def list_(req: Request) -> Response:
        return json_response(svc.list(req.json_filters()))

    @router.route("POST", "/networks/create")
    def create(req: Request) -> Response:
        body = req.json(default=None)
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON body")
        result = svc.create(body)
        daemon.events.publish("network", "create", result["Id"], {"name": body.get("Name", ""), "type": "bridge"})
        return json_response(result, 201)

    @router.route("POST", "/networks/prune")
    def prune(req: Request) -> Response:
        return json_response(svc.prune(req.json_filters()))

    @router.route("GET", "/networks/{id}")
    def inspect(req: Request) -> Response:
        return json_response(svc.inspect(req.params["id"]))

    @router.route("DELETE", "/networks/{id}")
    def remove(req: Request) -> Response:
        net = svc.get(req.params["id"])
        svc.remove(net["Id"])
        daemon.events.publish("network", "destroy", net["Id"], {"name": net["Name"], "type": net["Driver"]})
        return Response(204)

    @router.route("POST", "/networks/{id}/connect")
    def connect(req: Request) -> Response:
        body = req.json(default={}) or {}
        svc.connect(req.params["id"], body.get("Container") or "", body.get("EndpointConfig"))
        return Response(200)

    @router.route("POST", "/networks/{id}/disconnect")
    def disconnect(req: Request) -> Response:
        body = req.json(default={}) or {}
        svc.disconnect(req.params["id"], body.get("Container") or "", bool(body.get("Force")))
        return Response(200)
