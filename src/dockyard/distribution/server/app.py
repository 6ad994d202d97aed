"""The registry's HTTP handlers: route, authorize, call storage, shape the response. Kept thin."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dockyard.distribution.server.auth import Authorizer, Scope
from dockyard.distribution.server.errors import RegistryError
from dockyard.distribution.server.httpd import Request, Response
from dockyard.distribution.server.paths import check_digest, check_name
from dockyard.distribution.server.search import search
from dockyard.distribution.server.storage import MAX_MANIFEST, OCI_INDEX, Storage

log = logging.getLogger("dockyard.registry")

_ROUTE = re.compile(
    r"^/v2/(?P<name>.+)/(?:(?P<kind>manifests|blobs|referrers)/(?P<ref>[^/]+)"
    r"|blobs/uploads/(?P<uuid>[^/]*)|(?P<tags>tags)/list)$"
)
JSON = "application/json"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Route:
    name: str
    kind: str  # manifests | blobs | referrers | uploads | tags
    ref: str


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None, content_type: str = JSON) -> Response:
    return Response(status, {"Content-Type": content_type, **(headers or {})}, json.dumps(obj).encode())


def error_response(exc: RegistryError) -> Response:
    return Response(exc.status, {"Content-Type": JSON, **exc.headers}, exc.body())


def _paginate(items: list[str], req: Request, link_path: str, key: str, extra: dict[str, Any]) -> Response:
    """`n`/`last` pagination with an RFC 5988 `Link: <...>; rel="next"` when more remain."""
    last = req.arg("last")
    n_arg = req.arg("n")
    if last:
        items = [i for i in items if i > last]
    headers = {}
    if n_arg not in (None, ""):
        try:
            n = int(n_arg)
        except ValueError:
            raise RegistryError("PAGINATION_NUMBER_INVALID", {"n": n_arg}) from None
        if n < 0:
            raise RegistryError("PAGINATION_NUMBER_INVALID", {"n": n_arg})
        if len(items) > n:
            items = items[:n]
            if items:
                headers["Link"] = f'<{link_path}?last={quote(items[-1], safe="")}&n={n}>; rel="next"'
    return _json({**extra, key: items}, headers=headers)


class RegistryApp:
    """The request handler given to the HTTP server."""

    def __init__(
        self, storage: Storage, access: Authorizer, token_path: str | None = None, token_issuer: Any = None
    ) -> None:
        self.storage = storage
        self.access = access
        self.token_path = token_path
        self.token_issuer = token_issuer

    def __call__(self, req: Request) -> Response:
        try:
            return self._dispatch(req)
        except RegistryError as exc:
            return error_response(exc)
        except (ConnectionError, TimeoutError):
            raise
        except Exception:
            log.exception("%s %s failed", req.method, req.path)
            return _json({"errors": [{"code": "UNKNOWN", "message": "unknown error"}]}, 500)

    def _dispatch(self, req: Request) -> Response:
        path = req.path
        if path.startswith("/v2/"):
            match = _ROUTE.match(path)
            if match is not None:
                kind = match["kind"] or ("tags" if match["tags"] else "uploads")
                ref = match["ref"] if match["kind"] else (match["uuid"] or "")
                return self._repo_request(req, Route(check_name(match["name"]), kind, ref))
            if path == "/v2/":
                return self._base(req)
            if path == "/v2/_catalog":
                return self._catalog(req)
        elif path == "/v2":
            return self._base(req)
        elif path == "/v1/search":
            return self._search(req)
        elif self.token_path and path == self.token_path and req.method in ("GET", "POST"):
            return _json(self.token_issuer.issue(req.headers, req.query))
        raise RegistryError("NAME_UNKNOWN", message="page not found", status=404)

    def _base(self, req: Request) -> Response:
        self.access.authorize(req.headers, [])
        return _json({})

    def _catalog(self, req: Request) -> Response:
        names = self.access.catalog(req.headers, self.storage.repositories())
        return _paginate(names, req, "/v2/_catalog", "repositories", {})

    def _search(self, req: Request) -> Response:
        names = self.access.visible(req.headers, self.storage.repositories())
        try:
            limit = int(req.arg("n") or 0)
        except ValueError:
            limit = 0
        return _json(search(names, req.arg("q") or "", limit))

    def _repo_request(self, req: Request, route: Route) -> Response:
        handler = _HANDLERS.get((route.kind, req.method))
        if handler is None:
            raise RegistryError("UNSUPPORTED", {"method": req.method}, status=405)
        return handler(self, req, route)

    def _allow(self, req: Request, name: str, *actions: str) -> None:
        self.access.authorize(req.headers, [Scope("repository", name, actions)])

    # ---- manifests ----------------------------------------------------------------------------
    def get_manifest(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "pull")
        m = self.storage.get_manifest(route.name, route.ref)
        return Response(
            200, {"Content-Type": m.media_type, "Docker-Content-Digest": m.digest, "Etag": f'"{m.digest}"'}, m.data
        )

    def put_manifest(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "push")
        data = req.body.read(MAX_MANIFEST + 1)
        digest, subject = self.storage.put_manifest(route.name, route.ref, data, req.headers.get("content-type", ""))
        headers = {"Location": f"/v2/{route.name}/manifests/{digest}", "Docker-Content-Digest": digest}
        if subject:
            headers["OCI-Subject"] = subject
        return Response(201, headers)

    def delete_manifest(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "delete")
        self.storage.delete_manifest(route.name, route.ref)
        return Response(202)

    def list_tags(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "pull")
        tags = self.storage.tags(route.name)
        return _paginate(tags, req, f"/v2/{route.name}/tags/list", "tags", {"name": route.name})

    def get_referrers(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "pull")
        artifact_type = req.arg("artifactType")
        manifests = self.storage.referrers(route.name, check_digest(route.ref), artifact_type)
        headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
        return _json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests},
            headers=headers,
            content_type=OCI_INDEX,
        )

    # ---- blobs --------------------------------------------------------------------------------
    def get_blob(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "pull")
        path = self.storage.blob_path(route.name, route.ref)
        try:
            f = open(path, "rb") if req.method == "GET" else None  # noqa: SIM115 (the server closes it)
            size = os.fstat(f.fileno()).st_size if f else os.stat(path).st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", {"digest": route.ref}) from None
        headers = {
            "Content-Type": "application/octet-stream",
            "Docker-Content-Digest": route.ref,
            "Etag": f'"{route.ref}"',
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
        }
        start, end, status = 0, size - 1, 200
        wanted = req.headers.get("range")
        if wanted:
            parsed = _parse_range(wanted, size)
            if parsed is None:
                if f:
                    f.close()
                return Response(416, {"Content-Range": f"bytes */{size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        if f is None:  # HEAD: the GET's headers and length, no body
            return Response(status, headers, length=end - start + 1)
        return Response(status, headers, file=f, offset=start, length=end - start + 1)

    def delete_blob(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "delete")
        self.storage.delete_blob(route.name, check_digest(route.ref))
        return Response(202, {"Docker-Content-Digest": route.ref})

    # ---- uploads ------------------------------------------------------------------------------
    def _upload_headers(self, route: Route, uuid: str, size: int) -> dict[str, str]:
        return {
            "Location": f"/v2/{route.name}/blobs/uploads/{uuid}",
            "Docker-Upload-UUID": uuid,
            "Range": f"0-{max(size - 1, 0)}",
        }

    def _created(self, route: Route, digest: str) -> Response:
        return Response(201, {"Location": f"/v2/{route.name}/blobs/{digest}", "Docker-Content-Digest": digest})

    def start_upload(self, req: Request, route: Route) -> Response:
        if route.ref:
            raise RegistryError("UNSUPPORTED", status=405)
        self._allow(req, route.name, "pull", "push")
        mount, source = req.arg("mount"), req.arg("from")
        if mount and source:
            try:
                self._allow(req, check_name(source), "pull")
                if self.storage.mount_blob(route.name, source, check_digest(mount)):
                    return self._created(route, mount)
            except RegistryError as exc:
                if exc.code not in ("UNAUTHORIZED", "DENIED", "NAME_INVALID"):
                    raise
        digest = req.arg("digest")
        if digest is not None:
            return self._created(route, self.storage.put_blob(route.name, digest, req.body, _length(req)))
        uuid = self.storage.start_upload(route.name)
        return Response(202, self._upload_headers(route, uuid, 0))

    def patch_upload(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "push")
        start = None
        content_range = req.headers.get("content-range")
        if content_range:
            first, _, last = content_range.removeprefix("bytes ").partition("-")
            try:
                start, end = int(first), int(last.partition("/")[0])
            except ValueError:
                raise RegistryError("BLOB_UPLOAD_INVALID", status=416, message="invalid content range") from None
            length = _length(req)
            if end < start or (length is not None and end - start + 1 != length):
                raise RegistryError("BLOB_UPLOAD_INVALID", status=416, message="invalid content range")
        size = self.storage.append_upload(route.name, route.ref, req.body, _length(req), start)
        return Response(202, self._upload_headers(route, route.ref, size))

    def put_upload(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "push")
        digest = self.storage.finish_upload(route.name, route.ref, req.arg("digest"), req.body, _length(req))
        return self._created(route, digest)

    def upload_status(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "push")
        size = self.storage.upload_size(route.name, route.ref)
        return Response(204, self._upload_headers(route, route.ref, size))

    def cancel_upload(self, req: Request, route: Route) -> Response:
        self._allow(req, route.name, "push")
        self.storage.cancel_upload(route.name, route.ref)
        return Response(204)


def _length(req: Request) -> int | None:
    return req.body.length


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range clipped to the blob, None if unsatisfiable."""
    match = _RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last or int(last) == 0:
            return None
        return max(size - int(last), 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return None
    return start, end


_HANDLERS = {
    ("manifests", "GET"): RegistryApp.get_manifest,
    ("manifests", "HEAD"): RegistryApp.get_manifest,
    ("manifests", "PUT"): RegistryApp.put_manifest,
    ("manifests", "DELETE"): RegistryApp.delete_manifest,
    ("blobs", "GET"): RegistryApp.get_blob,
    ("blobs", "HEAD"): RegistryApp.get_blob,
    ("blobs", "DELETE"): RegistryApp.delete_blob,
    ("uploads", "POST"): RegistryApp.start_upload,
    ("uploads", "PATCH"): RegistryApp.patch_upload,
    ("uploads", "PUT"): RegistryApp.put_upload,
    ("uploads", "GET"): RegistryApp.upload_status,
    ("uploads", "DELETE"): RegistryApp.cancel_upload,
    ("tags", "GET"): RegistryApp.list_tags,
    ("referrers", "GET"): RegistryApp.get_referrers,
}
