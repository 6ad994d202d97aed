"""Routes for top, stats, pause/unpause, update, commit, archive (cp), the prunes and /system/df."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dockyard.api.http import Request, Response, StreamResponse, json_response
from dockyard.api.router import Router


def register(router: Router, daemon: Any) -> None:
    ops = daemon.container_ops
    archive = daemon.archive

    @router.route("GET", "/containers/{id}/top")
    def top(req: Request) -> Response:
        return json_response(ops.top(req.params["id"], req.arg("ps_args")))

    @router.route("GET", "/containers/{id}/stats")
    def stats(req: Request) -> StreamResponse:
        samples = ops.stats(req.params["id"], stream=req.flag("stream", True), one_shot=req.flag("one-shot"))

        def gen() -> Iterator[bytes]:
            for sample in samples:
                yield json.dumps(sample).encode() + b"\n"

        return StreamResponse(gen())

    @router.route("POST", "/containers/{id}/pause")
    def pause(req: Request) -> Response:
        ops.pause(req.params["id"])
        return Response(204)

    @router.route("POST", "/containers/{id}/unpause")
    def unpause(req: Request) -> Response:
        ops.unpause(req.params["id"])
        return Response(204)

    @router.route("POST", "/containers/{id}/update")
    def update(req: Request) -> Response:
        body = req.json(default={})
        return json_response(ops.update(req.params["id"], body if isinstance(body, dict) else {}))

    @router.route("POST", "/commit")
    def commit(req: Request) -> Response:
        body = req.json(default=None)
        image_id = ops.commit(
            req.arg("container") or "",
            repo=req.arg("repo") or "",
            tag=req.arg("tag") or "",
            comment=req.arg("comment") or "",
            author=req.arg("author") or "",
            changes=[c for value in req.query.get("changes", []) for c in value.split("\n") if c.strip()],
            pause=req.flag("pause", True),
            config=body if isinstance(body, dict) else None,
        )
        return json_response({"Id": image_id}, 201)

    @router.route("POST", "/containers/prune")
    def prune_containers(req: Request) -> Response:
        return json_response(ops.prune_containers(req.json_filters()))

    @router.route("POST", "/images/prune")
    def prune_images(req: Request) -> Response:
        return json_response(ops.prune_images(req.json_filters()))

    # Fallbacks for `docker system prune`, which also prunes networks and the build cache: registered
    # after every other module, so a real implementation registered earlier answers instead.
    @router.route("POST", "/networks/prune")
    def prune_networks(req: Request) -> Response:
        return json_response({"NetworksDeleted": None})

    @router.route("POST", "/build/prune")
    def prune_build_cache(req: Request) -> Response:
        return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})

    @router.route("GET", "/system/df")
    def disk_usage(req: Request) -> Response:
        usage = ops.disk_usage(req.query.get("type") or None)
        if "Volumes" in usage:
            usage["Volumes"] = daemon.volumes.disk_usage()
        return json_response(usage)

    @router.route("GET", "/containers/{id}/archive")
    def get_archive(req: Request) -> Response | StreamResponse:
        from dockyard.daemon.archive import STAT_HEADER, encode_stat

        path = _required_path(req)
        if req.method == "HEAD":
            info = archive.stat(req.params["id"], path)
            return Response(200, b"", "application/json", {STAT_HEADER: encode_stat(info)})
        info, chunks = archive.get(req.params["id"], path)
        return StreamResponse(chunks, "application/x-tar", headers={STAT_HEADER: encode_stat(info)})

    @router.route("PUT", "/containers/{id}/archive")
    def put_archive(req: Request) -> Response:
        archive.put(req.params["id"], _required_path(req), req.body)
        return Response(200, b"", "text/plain")


def _required_path(req: Request) -> str:
    from dockyard.errors import InvalidParameter

    path = req.arg("path")
    if not path:
        raise InvalidParameter("path is required")
    return path
