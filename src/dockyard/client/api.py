"""APIClient: one method per Engine API operation, shared by the CLI and compose.

Methods return decoded JSON, or a `Response` / `HijackedConnection` for streams. They carry no CLI
concerns (no printing, no exit codes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from dockyard.client.transport import (
    API_VERSION,
    HijackedConnection,
    Host,
    Params,
    Response,
    Transport,
    percent_encode,
)

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Filters = dict[str, list[str]] | dict[str, dict[str, bool]] | None


def _p(name: str) -> str:
    """Escape one path segment the way Go's url.URL does (keep `/`, `:` and `@` of image references)."""
    return percent_encode(name, "/:@")


def encode_filters(filters: Filters) -> str | None:
    """The JSON filters map docker sends: `{"status":{"running":true}}`."""
    if not filters:
        return None
    normalised: dict[str, dict[str, bool]] = {}
    for key, values in filters.items():
        items = values.keys() if isinstance(values, dict) else values
        normalised[key] = {str(v): True for v in items}
    return json.dumps(normalised, separators=(",", ":"))


def encode_auth(auth: dict[str, Any] | None) -> str:
    """`X-Registry-Auth`: base64url of the JSON AuthConfig (`e30=` for none)."""
    import base64

    return base64.urlsafe_b64encode(json.dumps(auth or {}).encode()).decode()


class APIClient:
    """A thin, typed mapping of the Docker Engine API (v1.47) over one Transport."""

    def __init__(
        self, host: Host | str | None = None, api_version: str = API_VERSION, timeout: float | None = None
    ) -> None:
        self.transport = Transport(host, api_version=api_version, timeout=timeout)

    @property
    def host(self) -> Host:
        return self.transport.host

    def _json(self, method: str, path: str, params: Params = None, json_body: Any = None) -> Any:
        return self.transport.request(method, path, params=params, json_body=json_body).json()

    def _call(self, method: str, path: str, params: Params = None, json_body: Any = None) -> None:
        self.transport.request(method, path, params=params, json_body=json_body).content()

    # -- system ----------------------------------------------------------------------------------
    def ping(self) -> dict[str, str]:
        """GET /_ping; returns the response headers (Api-Version, Ostype, ...), case-insensitive."""
        response = self.transport.request("GET", "/_ping")
        response.content()
        return response.headers

    def version(self) -> dict[str, Any]:
        return self._json("GET", "/version")

    def info(self) -> dict[str, Any]:
        return self._json("GET", "/info")

    def events(self, since: str | None = None, until: str | None = None, filters: Filters = None) -> Response:
        """GET /events: a JSON message stream."""
        params = {"since": since, "until": until, "filters": encode_filters(filters)}
        return self.transport.request("GET", "/events", params=params, timeout=None)

    # -- containers ------------------------------------------------------------------------------
    def containers(
        self, all: bool = False, limit: int | None = None, size: bool = False, filters: Filters = None
    ) -> list[dict[str, Any]]:
        params = {
            "all": all or None,
            "limit": limit if limit and limit > 0 else None,
            "size": size or None,
            "filters": encode_filters(filters),
        }
        return self._json("GET", "/containers/json", params)

    def create_container(
        self, body: dict[str, Any], name: str | None = None, platform: str | None = None
    ) -> dict[str, Any]:
        """POST /containers/create; returns `{"Id": ..., "Warnings": [...]}`."""
        return self._json("POST", "/containers/create", {"name": name or None, "platform": platform}, body)

    def inspect_container(self, container: str, size: bool = False) -> dict[str, Any]:
        return self._json("GET", f"/containers/{_p(container)}/json", {"size": size or None})

    def start_container(self, container: str, detach_keys: str | None = None) -> None:
        self._call("POST", f"/containers/{_p(container)}/start", {"detachKeys": detach_keys})

    def stop_container(self, container: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.transport.request(
            "POST", f"/containers/{_p(container)}/stop", params={"t": timeout, "signal": signal}, timeout=None
        ).content()

    def restart_container(self, container: str, timeout: int | None = None, signal: str | None = None) -> None:
        self.transport.request(
            "POST", f"/containers/{_p(container)}/restart", params={"t": timeout, "signal": signal}, timeout=None
        ).content()

    def kill_container(self, container: str, signal: str | int | None = None) -> None:
        self._call("POST", f"/containers/{_p(container)}/kill", {"signal": signal})

    def remove_container(self, container: str, force: bool = False, volumes: bool = False, link: bool = False) -> None:
        params = {"force": force or None, "v": volumes or None, "link": link or None}
        self._call("DELETE", f"/containers/{_p(container)}", params)

    def rename_container(self, container: str, new_name: str) -> None:
        self._call("POST", f"/containers/{_p(container)}/rename", {"name": new_name})

    def pause_container(self, container: str) -> None:
        self._call("POST", f"/containers/{_p(container)}/pause")

    def unpause_container(self, container: str) -> None:
        self._call("POST", f"/containers/{_p(container)}/unpause")

    def resize_container(self, container: str, height: int, width: int) -> None:
        self._call("POST", f"/containers/{_p(container)}/resize", {"h": height, "w": width})

    def top_container(self, container: str, ps_args: str | None = None) -> dict[str, Any]:
        return self._json("GET", f"/containers/{_p(container)}/top", {"ps_args": ps_args})

    def open_wait(self, container: str, condition: str | None = None) -> Response:
        """POST /containers/{id}/wait, returning once the headers arrived; `.json()` blocks for the exit.

        Opening the wait before start is what makes `next-exit` race-free in `run`.
        """
        return self.transport.request(
            "POST", f"/containers/{_p(container)}/wait", params={"condition": condition or None}, timeout=None
        )

    def wait_container(self, container: str, condition: str | None = None) -> dict[str, Any]:
        """Block until the container meets `condition`; returns `{"StatusCode": n, "Error": ...}`."""
        return self.open_wait(container, condition).json()

    def attach_container(
        self,
        container: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        stream: bool = True,
        logs: bool = False,
        detach_keys: str | None = None,
    ) -> HijackedConnection:
        params = {
            "stream": stream,
            "stdin": stdin,
            "stdout": stdout,
            "stderr": stderr,
            "logs": logs or None,
            "detachKeys": detach_keys,
        }
        return self.transport.hijack("POST", f"/containers/{_p(container)}/attach", params=params)

    def logs(
        self,
        container: str,
        *,
        stdout: bool = True,
        stderr: bool = True,
        follow: bool = False,
        since: str | None = None,
        until: str | None = None,
        timestamps: bool = False,
        tail: str = "all",
        details: bool = False,
    ) -> Response:
        """GET /containers/{id}/logs: multiplexed unless the container has a tty."""
        params = {
            "stdout": stdout,
            "stderr": stderr,
            "follow": follow or None,
            "since": since,
            "until": until,
            "timestamps": timestamps or None,
            "tail": tail,
            "details": details or None,
        }
        return self.transport.request("GET", f"/containers/{_p(container)}/logs", params=params, timeout=None)

    def export_container(self, container: str) -> Response:
        return self.transport.request("GET", f"/containers/{_p(container)}/export", timeout=None)

    def container_changes(self, container: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/containers/{_p(container)}/changes") or []

    def container_stats(self, container: str, stream: bool = True, one_shot: bool = False) -> Response:
        """GET /containers/{id}/stats: one JSON object per line (every second while streaming)."""
        params = {"stream": "1" if stream else "0", "one-shot": one_shot or None}
        return self.transport.request("GET", f"/containers/{_p(container)}/stats", params=params, timeout=None)

    def update_container(self, container: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/containers/{_p(container)}/update", json_body=body)

    def stat_container_path(self, container: str, path: str) -> dict[str, Any]:
        """HEAD /containers/{id}/archive: the path's stat from the X-Docker-Container-Path-Stat header."""
        response = self.transport.request(
            "HEAD", f"/containers/{_p(container)}/archive", params={"path": path}, check=False
        )
        response.content()
        if response.status >= 400:
            from dockyard.client.errors import APIError

            raise APIError(
                response.status,
                f"Could not find the file {path} in container {container}"
                if response.status == 404
                else f"HTTP {response.status}",
            )
        return _path_stat(response)

    def get_archive(self, container: str, path: str) -> tuple[dict[str, Any], Response]:
        """GET /containers/{id}/archive: (path stat, tar stream)."""
        response = self.transport.request(
            "GET", f"/containers/{_p(container)}/archive", params={"path": path}, timeout=None
        )
        return _path_stat(response), response

    def put_archive(
        self,
        container: str,
        path: str,
        data: bytes | Iterable[bytes] | Any,
        no_overwrite_dir_non_dir: bool = False,
        copy_uid_gid: bool = False,
    ) -> None:
        """PUT /containers/{id}/archive: extract a tar into the directory `path`."""
        params = {
            "path": path,
            "noOverwriteDirNonDir": no_overwrite_dir_non_dir or None,
            "copyUIDGID": copy_uid_gid or None,
        }
        self.transport.request(
            "PUT",
            f"/containers/{_p(container)}/archive",
            params=params,
            body=data,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        ).content()

    def commit(
        self,
        container: str,
        repository: str | None = None,
        tag: str | None = None,
        comment: str | None = None,
        author: str | None = None,
        changes: list[str] | None = None,
        pause: bool = True,
        config: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST /commit; returns `{"Id": "sha256:..."}`."""
        params: list[tuple[str, Any]] = [
            ("container", container),
            ("repo", repository),
            ("tag", tag),
            ("comment", comment),
            ("author", author),
            ("pause", "1" if pause else "0"),
        ]
        params += [("changes", change) for change in changes or []]
        return self._json("POST", "/commit", params, config)

    def prune_containers(self, filters: Filters = None) -> dict[str, Any]:
        return self._json("POST", "/containers/prune", {"filters": encode_filters(filters)})

    def prune_images(self, filters: Filters = None) -> dict[str, Any]:
        return self._json("POST", "/images/prune", {"filters": encode_filters(filters)})

    def df(self) -> dict[str, Any]:
        return self._json("GET", "/system/df")

    # -- volumes ---------------------------------------------------------------------------------
    def volumes(self, filters: Filters = None) -> dict[str, Any]:
        """GET /volumes: `{"Volumes": [...], "Warnings": ...}`."""
        return self._json("GET", "/volumes", {"filters": encode_filters(filters)})

    def create_volume(
        self,
        name: str = "",
        driver: str = "",
        driver_opts: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {"Name": name, "Driver": driver, "DriverOpts": driver_opts or {}, "Labels": labels or {}}
        return self._json("POST", "/volumes/create", json_body=body)

    def inspect_volume(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/volumes/{_p(name)}")

    def remove_volume(self, name: str, force: bool = False) -> None:
        self._call("DELETE", f"/volumes/{_p(name)}", {"force": force or None})

    def prune_volumes(self, filters: Filters = None) -> dict[str, Any]:
        return self._json("POST", "/volumes/prune", {"filters": encode_filters(filters)})

    # -- networks --------------------------------------------------------------------------------
    def networks(self, filters: Filters = None) -> list[dict[str, Any]]:
        return self._json("GET", "/networks", {"filters": encode_filters(filters)})

    def create_network(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /networks/create with docker's body (Name, Driver, IPAM, Internal, Options, Labels)."""
        return self._json("POST", "/networks/create", json_body=body)

    def inspect_network(self, network: str) -> dict[str, Any]:
        return self._json("GET", f"/networks/{_p(network)}")

    def remove_network(self, network: str) -> None:
        self._call("DELETE", f"/networks/{_p(network)}")

    def connect_network(self, network: str, container: str, endpoint_config: dict[str, Any] | None = None) -> None:
        body = {"Container": container, "EndpointConfig": endpoint_config or {}}
        self._call("POST", f"/networks/{_p(network)}/connect", json_body=body)

    def disconnect_network(self, network: str, container: str, force: bool = False) -> None:
        self._call("POST", f"/networks/{_p(network)}/disconnect", json_body={"Container": container, "Force": force})

    def prune_networks(self, filters: Filters = None) -> dict[str, Any]:
        return self._json("POST", "/networks/prune", {"filters": encode_filters(filters)})

    # -- exec ------------------------------------------------------------------------------------
    def exec_create(self, container: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"/containers/{_p(container)}/exec", json_body=body)

    def exec_start(self, exec_id: str, body: dict[str, Any]) -> HijackedConnection | None:
        """POST /exec/{id}/start: hijacked unless `body["Detach"]`."""
        if body.get("Detach"):
            self._call("POST", f"/exec/{_p(exec_id)}/start", json_body=body)
            return None
        return self.transport.hijack("POST", f"/exec/{_p(exec_id)}/start", json_body=body)

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self._json("GET", f"/exec/{_p(exec_id)}/json")

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self._call("POST", f"/exec/{_p(exec_id)}/resize", {"h": height, "w": width})

    # -- images ----------------------------------------------------------------------------------
    def images(self, all: bool = False, filters: Filters = None, digests: bool = False) -> list[dict[str, Any]]:
        params = {"all": all or None, "filters": encode_filters(filters), "digests": digests or None}
        return self._json("GET", "/images/json", params)

    def inspect_image(self, image: str) -> dict[str, Any]:
        return self._json("GET", f"/images/{_p(image)}/json")

    def image_history(self, image: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/images/{_p(image)}/history")

    def tag_image(self, image: str, repository: str, tag: str | None = None) -> None:
        self._call("POST", f"/images/{_p(image)}/tag", {"repo": repository, "tag": tag or None})

    def remove_image(self, image: str, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        params = {"force": force or None, "noprune": noprune or None}
        return self._json("DELETE", f"/images/{_p(image)}", params) or []

    def pull_image(
        self, from_image: str, tag: str | None = None, platform: str | None = None, auth: dict[str, Any] | None = None
    ) -> Response:
        """POST /images/create?fromImage=: a JSON progress stream (errors may come in-band)."""
        return self.transport.request(
            "POST",
            "/images/create",
            params={"fromImage": from_image, "tag": tag, "platform": platform},
            headers={"X-Registry-Auth": encode_auth(auth)},
            timeout=None,
        )

    def push_image(self, name: str, tag: str | None = None, auth: dict[str, Any] | None = None) -> Response:
        return self.transport.request(
            "POST",
            f"/images/{_p(name)}/push",
            params={"tag": tag},
            headers={"X-Registry-Auth": encode_auth(auth)},
            timeout=None,
        )

    def login(self, auth: dict[str, Any]) -> dict[str, Any]:
        """POST /auth: the daemon checks the credentials against the registry."""
        return self._json("POST", "/auth", json_body=auth)

    def search_images(
        self, term: str, limit: int | None = None, filters: Filters = None, auth: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        params = {"term": term, "limit": limit, "filters": encode_filters(filters)}
        return self.transport.request(
            "GET", "/images/search", params=params, headers={"X-Registry-Auth": encode_auth(auth)}
        ).json()

    def distribution_inspect(self, image: str, auth: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.transport.request(
            "GET", f"/distribution/{_p(image)}/json", headers={"X-Registry-Auth": encode_auth(auth)}
        ).json()

    def import_image(
        self,
        source: bytes | Iterable[bytes] | Any = None,
        *,
        from_src: str = "-",
        repository: str | None = None,
        tag: str | None = None,
        message: str | None = None,
        changes: list[str] | None = None,
        platform: str | None = None,
    ) -> Response:
        """POST /images/create?fromSrc=-: upload a rootfs tar (or name a URL); a JSON progress stream."""
        params: list[tuple[str, Any]] = [
            ("fromSrc", from_src),
            ("repo", repository),
            ("tag", tag),
            ("message", message),
            ("platform", platform),
        ]
        params += [("changes", change) for change in changes or []]
        headers = {"Content-Type": "application/x-tar"} if source is not None else {}
        return self.transport.request(
            "POST", "/images/create", params=params, body=source, headers=headers, timeout=None
        )

    def save_images(self, names: list[str]) -> Response:
        """GET /images/get?names=...: a docker-archive tar stream."""
        return self.transport.request("GET", "/images/get", params={"names": names}, timeout=None)

    def build(self, context: bytes | Iterable[bytes] | Any, params: Params) -> Response:
        """POST /build: a tar build context in, docker's JSON build messages out."""
        return self.transport.request(
            "POST", "/build", params=params, body=context, headers={"Content-Type": "application/x-tar"}, timeout=None
        )

    def load_image(self, source: bytes | Iterable[bytes] | Any, quiet: bool = False) -> Response:
        """POST /images/load: JSON messages (or plain text from old daemons)."""
        return self.transport.request(
            "POST",
            "/images/load",
            params={"quiet": quiet or None},
            body=source,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        )

    # -- generic escape hatch for resources not wrapped yet (networks, volumes) ----------------
    def request_json(self, method: str, path: str, params: Params = None, json_body: Any = None) -> Any:
        return self._json(method, path, params, json_body)


def _path_stat(response: Response) -> dict[str, Any]:
    import base64

    header = response.headers.get("X-Docker-Container-Path-Stat")
    return json.loads(base64.b64decode(header)) if header else {}
