"""The registry HTTP client (OCI distribution spec) over urllib3, with auth and transport security.

One `Registry` talks to one registry host: it picks https (or http for loopback and --insecure-registry
hosts, after trying https like docker does), trusts the CA files of certs.d/<host:port>/, answers auth
challenges through an Authenticator, follows redirects without carrying Authorization to other hosts,
and turns the spec's error bodies into dockyard errors with docker's wording.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urljoin

from dockyard.distribution.client.auth import Authenticator
from dockyard.distribution.client.credentials import AuthConfig
from dockyard.errors import DockyardError, Forbidden, InvalidParameter, NotFound, Unauthorized

DOCKER_HUB_REGISTRY = "registry-1.docker.io"
DOCKER_HUB_INDEX_HOST = "index.docker.io"
CERTS_DIRS = (Path("/etc/dockyard/certs.d"), Path("/etc/docker/certs.d"))
USER_AGENT = "dockyard/0.1 (registry client)"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RegistryOptions:
    """Daemon-wide registry settings (--insecure-registry, certs.d locations)."""

    insecure: tuple[str, ...] = ()
    certs_dirs: tuple[Path, ...] = CERTS_DIRS
    connect_timeout: float = 15.0
    read_timeout: float = 120.0

    def is_insecure(self, host: str) -> bool:
        """Loopback and the named registries (host[:port] or a CIDR) may use plain HTTP."""
        name = _hostname(host)
        if name == "localhost":
            return True
        address = _ip(name)
        if address is not None and address.is_loopback:
            return True
        for entry in self.insecure:
            if entry in (host, name):
                return True
            if "/" in entry and address is not None:
                try:
                    if address in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False


def _hostname(host: str) -> str:
    """`127.0.0.1:5000` → `127.0.0.1`, `[::1]:5000` → `::1`."""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if ":" in host else host


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def registry_host(domain: str) -> str:
    """The host serving a reference domain's /v2/ API (docker.io is registry-1.docker.io)."""
    return DOCKER_HUB_REGISTRY if domain in ("docker.io", "index.docker.io") else domain


@dataclass
class BlobUpload:
    """An upload session: the Location to continue at."""

    location: str


@dataclass
class Manifest:
    data: bytes
    media_type: str
    digest: str


@dataclass
class _State:
    base: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class RegistryError(DockyardError):
    """Any registry failure that is not auth or not-found; the message is docker's errcode text."""


def error_message(status: int, body: bytes) -> str:
    """docker's errcode rendering: `manifest unknown: manifest unknown`."""
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    parts = []
    for err in errors if isinstance(errors, list) else []:
        if isinstance(err, dict):
            code = str(err.get("code") or "unknown").lower().replace("_", " ")
            parts.append(f"{code}: {err.get('message') or code}")
    if parts:
        return "; ".join(parts)
    text = body.decode(errors="replace").strip()
    return text[:200] if text else f"unexpected status {status}"


def _raise_for(status: int, method: str, url: str, body: bytes) -> None:
    message = error_message(status, body)
    if status == 401:
        if not message.startswith("unauthorized"):
            message = f"unauthorized: {message}"
        raise Unauthorized(message)
    if status == 403:
        raise Forbidden(message if message.startswith("denied") else f"denied: {message}")
    if status == 404:
        raise NotFound(message)
    raise RegistryError(f'{method} "{url}": {message}')


def _ssl_context(host: str, options: RegistryOptions) -> Any:
    """Default trust plus certs.d/<host>/*.crt (CAs) and a client cert pair (*.cert + *.key)."""
    import ssl

    context = ssl.create_default_context()
    for base in options.certs_dirs:
        directory = base / host
        if not directory.is_dir():
            continue
        for ca in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(ca))
        for cert in sorted(directory.glob("*.cert")):
            key = cert.with_suffix(".key")
            if key.exists():
                context.load_cert_chain(str(cert), str(key))
    return context


class Registry:
    """One registry host. Thread-safe: the connection pool and the token cache are shared."""

    def __init__(self, domain: str, auth: AuthConfig | None = None, options: RegistryOptions | None = None) -> None:
        import urllib3

        self.domain = domain
        self.host = registry_host(domain)
        self.options = options or RegistryOptions()
        self._urllib3 = urllib3
        self._timeout = urllib3.Timeout(connect=self.options.connect_timeout, read=self.options.read_timeout)
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            ssl_context=_ssl_context(self.host, self.options),
            headers={"User-Agent": USER_AGENT},
        )
        self._plain_pool: Any = None
        self._state = _State()
        self.authenticator = Authenticator(auth, self._fetch_token)

    # -- transport -----------------------------------------------------------------------------------
    def _fetch_token(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        response = self._pool.request(method, url, headers=headers, timeout=self._timeout, retries=self._retries())
        return response.status, response.data

    def _retries(self) -> Any:
        # Redirects are followed (blob GETs go to CDNs); PoolManager drops Authorization across hosts.
        return self._urllib3.Retry(
            total=None,
            connect=2,
            read=0,
            redirect=5,
            status=0,
            raise_on_redirect=True,
            remove_headers_on_redirect=["Authorization", "Cookie"],
        )

    def base_url(self) -> str:
        """https://host or, for insecure registries where https fails, http://host (decided once)."""
        with self._state.lock:
            if self._state.base is None:
                self._state.base = self._probe()
            return self._state.base

    def _probe(self) -> str:
        https = f"https://{self.host}"
        if not self.options.is_insecure(self.host):
            return https
        try:
            import ssl

            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self._plain_pool = self._urllib3.PoolManager(ssl_context=context, headers={"User-Agent": USER_AGENT})
            self._plain_pool.request(
                "GET", https + "/v2/", timeout=self._urllib3.Timeout(connect=3, read=5), retries=False
            )
            self._pool = self._plain_pool  # insecure https: no verification, as docker does
            return https
        except Exception:  # any TLS or protocol failure: the registry speaks plain HTTP
            return f"http://{self.host}"

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else self.base_url() + path

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str = "",
        headers: dict[str, str] | None = None,
        body: Any = None,
        stream: bool = False,
        ok: Iterable[int] = (200,),
    ) -> Any:
        """One request with auth: pre-authorised from the last challenge, retried once after a 401."""
        url = self.url(path)
        allowed = set(ok)
        sent = dict(headers or {})
        auth = self.authenticator.header_for(scope)
        if auth:
            sent["Authorization"] = auth
        response = self._send(method, url, sent, body, stream)
        if response.status == 401 and response.headers.get("WWW-Authenticate"):
            challenge = response.headers["WWW-Authenticate"]
            response.drain_conn()
            if hasattr(body, "seek"):
                body.seek(0)
            sent["Authorization"] = self.authenticator.answer(challenge, scope)
            response = self._send(method, url, sent, body, stream)
        if response.status not in allowed:
            data = response.read(65536) if stream else response.data
            response.release_conn()
            _raise_for(response.status, method, url, data)
        return response

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any, stream: bool) -> Any:
        try:
            return self._pool.request(
                method,
                url,
                headers=headers,
                body=body,
                preload_content=not stream,
                timeout=self._timeout,
                retries=self._retries(),
                redirect=True,
            )
        except self._urllib3.exceptions.HTTPError as exc:
            raise RegistryError(f'{method} "{url}": {_reason(exc)}') from None

    # -- API -----------------------------------------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ with credentials: what `login` uses to verify them."""
        self.request("GET", "/v2/", scope="")

    def get_manifest(self, repo: str, reference: str, accept: Iterable[str]) -> Manifest:
        from dockyard.image.content import sha256_digest

        response = self.request(
            "GET",
            f"/v2/{repo}/manifests/{quote(reference, safe=':')}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": ", ".join(accept)},
        )
        data = response.data
        media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
        return Manifest(data, media_type, sha256_digest(data))

    def head_manifest(self, repo: str, reference: str, accept: Iterable[str]) -> tuple[str, str, int]:
        """(digest, media type, size) without the body (`docker buildx imagetools`-like lookups)."""
        response = self.request(
            "HEAD",
            f"/v2/{repo}/manifests/{quote(reference, safe=':')}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": ", ".join(accept)},
        )
        return (
            response.headers.get("Docker-Content-Digest", ""),
            (response.headers.get("Content-Type") or "").split(";")[0].strip(),
            int(response.headers.get("Content-Length") or 0),
        )

    def blob_exists(self, repo: str, digest: str, scope: str = "") -> bool:
        try:
            self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=scope or f"repository:{repo}:pull")
        except NotFound:
            return False
        return True

    def open_blob(self, repo: str, digest: str) -> Any:
        """A streaming response for a blob (close it with release_conn)."""
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull", stream=True)

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull").data

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> BlobUpload | None:
        """Cross-repository mount; None when mounted, else the upload session the registry opened."""
        scope = f"repository:{repo}:pull,push repository:{from_repo}:pull"
        response = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={quote(from_repo)}", scope=scope, ok=(201, 202)
        )
        if response.status == 201:
            return None
        return BlobUpload(urljoin(self.url(f"/v2/{repo}/blobs/uploads/"), response.headers["Location"]))

    def start_upload(self, repo: str) -> BlobUpload:
        response = self.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scope=f"repository:{repo}:pull,push",
            ok=(202,),
            headers={"Content-Length": "0"},
        )
        location = response.headers.get("Location")
        if not location:
            raise RegistryError("the registry opened an upload without a Location")
        return BlobUpload(urljoin(self.url(f"/v2/{repo}/blobs/uploads/"), location))

    def upload(
        self,
        repo: str,
        upload: BlobUpload,
        digest: str,
        size: int,
        source: BinaryIO,
        progress: Progress | None = None,
        chunk_size: int = 0,
    ) -> None:
        """Send a blob: one monolithic PUT, or PATCH chunks of `chunk_size` then a closing PUT."""
        scope = f"repository:{repo}:pull,push"
        location = upload.location
        if chunk_size > 0:
            offset = 0
            while offset < size:
                data = source.read(min(chunk_size, size - offset))
                if not data:
                    raise RegistryError(f"blob {digest} ended after {offset} of {size} bytes")
                response = self.request(
                    "PATCH",
                    location,
                    scope=scope,
                    body=data,
                    ok=(202,),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(data)),
                        "Content-Range": f"{offset}-{offset + len(data) - 1}",
                    },
                )
                location = urljoin(location, response.headers.get("Location") or location)
                offset += len(data)
                if progress:
                    progress(len(data))
            body: Any = b""
            length = 0
        else:
            body = _ProgressReader(source, progress)
            length = size
        separator = "&" if "?" in location else "?"
        self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            scope=scope,
            body=body,
            ok=(201, 204),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(length)},
        )

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        from dockyard.image.content import sha256_digest

        response = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull,push",
            body=data,
            ok=(200, 201, 202),
            headers={"Content-Type": media_type},
        )
        return response.headers.get("Docker-Content-Digest") or sha256_digest(data)

    def tags(self, repo: str) -> list[str]:
        """Every tag of a repository, following `Link: <...>; rel="next"` pages."""
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            response = self.request("GET", path, scope=f"repository:{repo}:pull")
            data = json.loads(response.data or b"{}")
            tags += [str(t) for t in data.get("tags") or []]
            path = _next_link(response.headers.get("Link", ""))
        return tags

    def search(self, term: str, limit: int) -> dict[str, Any]:
        """The v1 search API docker's daemon calls (`GET /v1/search?q=&n=`)."""
        response = self.request(
            "GET", f"/v1/search?q={quote(term)}&n={limit}", scope="", headers={"X-Docker-Token": "true"}
        )
        try:
            data = json.loads(response.data)
        except ValueError:
            raise RegistryError("invalid search response from the registry") from None
        if not isinstance(data, dict):
            raise RegistryError("invalid search response from the registry")
        return data


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part and ">" in part:
            return part[part.index("<") + 1 : part.index(">")]
    return None


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


class _ProgressReader:
    """A file-like body that reports how much of it has been sent."""

    def __init__(self, inner: BinaryIO, progress: Progress | None) -> None:
        self.inner = inner
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        if data and self.progress:
            self.progress(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.inner.seek(offset, whence)


def validate_repository(path: str) -> str:
    """Paths land in URLs: refuse anything the reference grammar would not have produced."""
    if not path or ".." in path or path.startswith("/") or any(c in path for c in "?#% \\"):
        raise InvalidParameter(f"invalid repository name {path!r}")
    return path
