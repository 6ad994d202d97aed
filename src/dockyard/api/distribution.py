"""Registry routes of the Engine API: pull (from /images/create), push, /auth, search, distribution inspect."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dockyard.api.http import Request, Response, StreamResponse, json_response
from dockyard.api.router import Router
from dockyard.errors import InvalidParameter


def registry_auth(req: Request) -> Any:
    """Decode X-Registry-Auth (base64url JSON AuthConfig, padding optional); None when absent or empty."""
    from dockyard.distribution.client.credentials import AuthConfig

    raw = (req.headers.get("X-Registry-Auth") or "").strip()
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidParameter("invalid X-Registry-Auth header: could not decode it") from None
    if not isinstance(data, dict):
        return None
    auth = AuthConfig.from_api(data)
    return None if auth.empty else auth


def pull_response(req: Request, daemon: Any) -> StreamResponse:
    """POST /images/create?fromImage=: the reference is checked up front, the pull streams progress."""
    from dockyard.daemon.distribution import parse_pull_reference

    ref = parse_pull_reference(req.arg("fromImage") or "", req.arg("tag") or "")
    auth = registry_auth(req)
    platform = req.arg("platform") or ""
    if platform:
        from dockyard.image.manifest import Platform

        Platform.parse(platform)
    svc = daemon.distribution
    return StreamResponse(svc.stream(lambda emit: svc.pull(ref, auth, emit, platform)))


def register(router: Router, daemon: Any) -> None:
    @router.route("POST", "/images/{name:.+}/push")
    def push(req: Request) -> StreamResponse:
        svc = daemon.distribution
        name, tag, auth = req.params["name"], req.arg("tag") or "", registry_auth(req)
        return StreamResponse(svc.stream(lambda emit: svc.push(name, tag, auth, emit)))

    @router.route("POST", "/auth")
    def auth(req: Request) -> Response:
        from dockyard.distribution.client.credentials import AuthConfig

        body = req.json(default={})
        if not isinstance(body, dict):
            raise InvalidParameter("invalid AuthConfig")
        return json_response(daemon.distribution.login(AuthConfig.from_api(body)))

    @router.route("GET", "/images/search")
    def search(req: Request) -> Response:
        term = req.arg("term") or ""
        limit = req.int_arg("limit", 25) or 25
        return json_response(daemon.distribution.search(term, limit, req.json_filters(), registry_auth(req)))

    @router.route("GET", "/distribution/{name:.+}/json")
    def inspect(req: Request) -> Response:
        return json_response(daemon.distribution.inspect(req.params["name"], registry_auth(req)))
