"""Image routes of the Engine API: list, inspect, history, tag, remove, import, save, load."""

from __future__ import annotations

import json
from typing import Any

from dockyard.api.http import Request, Response, StreamResponse, json_response
from dockyard.api.router import Router
from dockyard.errors import DockyardError, InvalidParameter


def progress_line(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def error_line(message: str) -> bytes:
    return progress_line(errorDetail={"message": message}, error=message)


def register(router: Router, daemon: Any) -> None:
    svc = daemon.image_service

    @router.route("GET", "/images/json")
    def list_(req: Request) -> Response:
        items = svc.list(all_=req.flag("all"), filters=req.json_filters(), digests=req.flag("digests"))
        if not req.api_at_least("1.44"):  # VirtualSize left the API in 1.44; older clients still read it
            for item in items:
                item.setdefault("VirtualSize", item.get("Size", 0))
        return json_response(items)

    @router.route("POST", "/images/create")
    def create(req: Request) -> Response | StreamResponse:
        src = req.arg("fromSrc")
        if src is None:
            from dockyard.api.distribution import pull_response

            return pull_response(req, daemon)
        if src != "-":
            raise InvalidParameter("importing from a URL is not supported: pass the tarball as the request body")
        repo, tag = req.arg("repo") or "", req.arg("tag") or ""
        changes = req.query.get("changes", [])
        message = req.arg("message") or ""
        image = svc.import_tar(req.body, repo=repo, tag=tag, changes=changes, message=message)
        return StreamResponse(iter([progress_line(status=image.id)]))

    @router.route("GET", "/images/get")
    def save_many(req: Request) -> StreamResponse:
        names = req.query.get("names", [])
        return StreamResponse(svc.save(names), "application/x-tar")

    @router.route("GET", "/images/{name:.+}/get")
    def save_one(req: Request) -> StreamResponse:
        return StreamResponse(svc.save([req.params["name"]]), "application/x-tar")

    @router.route("POST", "/images/load")
    def load(req: Request) -> StreamResponse:
        # quiet only suppresses progress bars, which a local load does not produce.
        try:
            lines = svc.load(req.body)
        except DockyardError as exc:
            if isinstance(exc, InvalidParameter):
                raise
            return StreamResponse(iter([error_line(exc.message)]))
        return StreamResponse(iter([progress_line(stream=line + "\n") for line in lines]))

    @router.route("GET", "/images/{name:.+}/json")
    def inspect(req: Request) -> Response:
        body = svc.inspect(req.params["name"])
        if not req.api_at_least("1.44"):  # fields moby dropped in 1.44, still sent to older clients
            body.setdefault("VirtualSize", body.get("Size", 0))
            body.setdefault("Container", "")
            body.setdefault("ContainerConfig", {**(body.get("Config") or {}), "Cmd": None})
        return json_response(body)

    @router.route("GET", "/images/{name:.+}/history")
    def history(req: Request) -> Response:
        return json_response(svc.history(req.params["name"]))

    @router.route("POST", "/images/{name:.+}/tag")
    def tag(req: Request) -> Response:
        repo = req.arg("repo") or ""
        if not repo:
            raise InvalidParameter("repository name must have at least one component")
        svc.tag(req.params["name"], repo, req.arg("tag") or "")
        return Response(201)

    @router.route("DELETE", "/images/{name:.+}")
    def remove(req: Request) -> Response:
        return json_response(svc.delete(req.params["name"], force=req.flag("force"), prune=not req.flag("noprune")))
