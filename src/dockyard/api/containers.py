"""Container routes of the Engine API (docker's paths, query parameters and JSON shapes)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from dockyard.api.http import HIJACKED, Request, Response, StreamResponse, json_response
from dockyard.api.router import Router
from dockyard.api.system import _time_arg
from dockyard.errors import InvalidParameter
from dockyard.runtime.frames import encode_frame

RAW_STREAM = "application/vnd.docker.raw-stream"
MUX_STREAM = "application/vnd.docker.multiplexed-stream"


def stream_type(req: Request, tty: bool) -> str:
    """Docker's rule for attach/exec/logs: multiplexed frames without a tty from API 1.42 on."""
    return MUX_STREAM if not tty and req.api_at_least("1.42") else RAW_STREAM


def _older_endpoints(body: dict[str, Any], dns_names: bool) -> dict[str, Any]:
    """NetworkSettings as moby shows them to clients before API 1.45: the container's short id and
    hostname among the aliases of each user-defined network (docker-compose v1 checks for them before
    it reconnects a network), and no DNSNames before 1.44."""
    settings = body.get("NetworkSettings") or {}
    extra = [body["Id"][:12], (body.get("Config") or {}).get("Hostname") or ""]
    networks = {}
    for name, endpoint in (settings.get("Networks") or {}).items():
        endpoint = dict(endpoint)
        if name not in ("bridge", "host", "none") and not name.startswith("container:"):
            aliases = list(endpoint.get("Aliases") or [])
            endpoint["Aliases"] = aliases + [a for a in dict.fromkeys(extra) if a and a not in aliases]
        if not dns_names:
            endpoint.pop("DNSNames", None)
        networks[name] = endpoint
    return {**settings, "Networks": networks}


def register(router: Router, daemon: Any) -> None:
    svc = daemon.containers

    @router.route("POST", "/containers/create")
    def create(req: Request) -> Response:
        body = req.json(default=None)
        if not isinstance(body, dict):
            raise InvalidParameter("config cannot be empty in order to create a container")
        c = svc.create(body, req.arg("name"))
        return json_response({"Id": c.id, "Warnings": []}, 201)

    @router.route("GET", "/containers/json")
    def list_(req: Request) -> Response:
        return json_response(
            svc.list(req.flag("all"), req.int_arg("limit", -1) or -1, req.flag("size"), req.json_filters())
        )

    @router.route("GET", "/containers/{id}/json")
    def inspect(req: Request) -> Response:
        body = svc.inspect(req.params["id"], req.flag("size"))
        if not req.api_at_least("1.42"):  # kernel memory limits left the API in 1.42
            body["HostConfig"] = {**body["HostConfig"], "KernelMemory": 0, "KernelMemoryTCP": 0}
        if not req.api_at_least("1.45"):
            body["NetworkSettings"] = _older_endpoints(body, dns_names=req.api_at_least("1.44"))
        return json_response(body)

    @router.route("POST", "/containers/{id}/start")
    def start(req: Request) -> Response:
        svc.start(req.params["id"])
        return Response(204)

    @router.route("POST", "/containers/{id}/stop")
    def stop(req: Request) -> Response:
        svc.stop(req.params["id"], req.int_arg("t"), req.arg("signal"))
        return Response(204)

    @router.route("POST", "/containers/{id}/restart")
    def restart(req: Request) -> Response:
        svc.restart(req.params["id"], req.int_arg("t"), req.arg("signal"))
        return Response(204)

    @router.route("POST", "/containers/{id}/kill")
    def kill(req: Request) -> Response:
        svc.kill(req.params["id"], req.arg("signal"))
        return Response(204)

    @router.route("POST", "/containers/{id}/wait")
    def wait(req: Request) -> StreamResponse:
        block = svc.wait(req.params["id"], req.arg("condition", "not-running") or "not-running")

        def gen() -> Iterator[bytes]:
            yield b""
            yield json.dumps(block()).encode() + b"\n"

        return StreamResponse(gen())

    @router.route("DELETE", "/containers/{id}")
    def remove(req: Request) -> Response:
        svc.remove(req.params["id"], req.flag("force"), req.flag("v"))
        return Response(204)

    @router.route("POST", "/containers/{id}/rename")
    def rename(req: Request) -> Response:
        name = req.arg("name")
        if not name:
            raise InvalidParameter("name is required")
        svc.rename(req.params["id"], name)
        return Response(204)

    @router.route("GET", "/containers/{id}/logs")
    def logs(req: Request) -> StreamResponse:
        stdout, stderr = req.flag("stdout"), req.flag("stderr")
        if not (stdout or stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        tail_arg = req.arg("tail", "all")
        tail = None if tail_arg in (None, "", "all") else _int(tail_arg, "tail")
        c, entries = svc.logs(
            req.params["id"],
            stdout=stdout,
            stderr=stderr,
            follow=req.flag("follow"),
            since=_time_arg(req.arg("since")) or 0.0,
            until=_time_arg(req.arg("until")),
            tail=tail,
            timestamps=req.flag("timestamps"),
        )
        tty = bool(c.config.get("Tty"))
        # Batch for throughput, except when following: then each entry must reach the client at once.
        batch_limit = 0 if req.flag("follow") else 1 << 16

        def gen() -> Iterator[bytes]:
            batch = bytearray()
            for stream, data in entries:
                batch += data if tty else encode_frame(stream, data)
                if len(batch) >= batch_limit:
                    yield bytes(batch)
                    batch.clear()
            if batch:
                yield bytes(batch)

        return StreamResponse(gen(), stream_type(req, tty))

    def serve_attach(req: Request, c: Any, client: Any, raw: bool, keys: bytes) -> object:
        """The rest of an attach once the connection is the client's: replay the log when asked,
        bridge to the monitor while it streams, then end our side. `raw`: no multiplexing."""
        from dockyard.daemon.attach import AttachSession

        wanted = {name: req.flag(name) for name in ("stdin", "stdout", "stderr")}
        session = AttachSession(client, tty=raw, detach_keys=keys, **wanted)
        if req.flag("logs"):
            _, entries = svc.logs(c.id, stdout=wanted["stdout"], stderr=wanted["stderr"], follow=False,
                                  since=0.0, until=None, tail=None, timestamps=False)  # fmt: skip
            for stream, data in entries:
                client.sendall(data if raw else encode_frame(stream, data))
        if req.flag("stream"):
            daemon.attach_session(c, session)
            session.done.wait()
        client.shutdown_write()
        return HIJACKED

    @router.route("POST", "/containers/{id}/attach")
    def attach(req: Request) -> object:
        from dockyard.daemon.attach import parse_detach_keys

        c = svc.get(req.params["id"])
        keys = parse_detach_keys(req.arg("detachKeys"))
        tty = bool(c.config.get("Tty"))
        return serve_attach(req, c, req.hijack(stream_type(req, tty)), tty, keys)

    @router.route("GET", "/containers/{id}/attach/ws")
    def attach_ws(req: Request) -> object:
        """attach over a WebSocket: raw output (no multiplexing, tty or not) as binary messages, the
        client's messages as stdin, as moby's attach/ws serves browsers and tools."""
        from dockyard.daemon.attach import parse_detach_keys

        c = svc.get(req.params["id"])
        keys = parse_detach_keys(req.arg("detachKeys")) if c.config.get("Tty") else b""
        return serve_attach(req, c, req.websocket(), True, keys)

    @router.route("POST", "/containers/{id}/resize")
    def resize(req: Request) -> Response:
        svc.resize(req.params["id"], req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0)
        return Response(200, b"")

    @router.route("GET", "/containers/{id}/export")
    def export(req: Request) -> StreamResponse:
        return StreamResponse(svc.export(req.params["id"]), "application/x-tar")

    @router.route("GET", "/containers/{id}/changes")
    def changes(req: Request) -> Response:
        c = svc.get(req.params["id"])
        return json_response([{"Path": ch.path, "Kind": ch.kind} for ch in daemon.snapshotter.changes(c.id)])


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r}") from None
