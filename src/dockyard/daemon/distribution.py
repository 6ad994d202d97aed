"""The daemon's distribution service: pull, push, login, search and distribution inspect.

Pull and push run in a worker thread and report docker's JSON progress messages through a queue, so
the API streams them as they happen and errors arrive in-band, as docker's daemon sends them.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dockyard.distribution.client.credentials import AuthConfig, domain_of_server
from dockyard.distribution.client.progress import Emit, status
from dockyard.errors import DockyardError, InvalidParameter
from dockyard.image import reference as refs

log = logging.getLogger("dockyard.distribution")

DEFAULT_MAX_CONCURRENT_DOWNLOADS = 3
DEFAULT_MAX_CONCURRENT_UPLOADS = 5
_REGISTRY_CACHE = 16
_DONE = object()


def parse_pull_reference(from_image: str, tag: str) -> refs.Reference:
    """fromImage + tag as docker's postImagesCreate combines them (tag may be a digest)."""
    ref = refs.parse_normalized(from_image)
    if tag:
        if ":" in tag and tag.split(":", 1)[0] in ("sha256", "sha384", "sha512"):
            ref = refs.Reference(ref.domain, ref.path, None, refs.validate_digest(tag))
        else:
            ref = refs.Reference(ref.domain, ref.path, refs.validate_tag(tag), None)
    elif ref.digest:
        ref = refs.Reference(ref.domain, ref.path, None, ref.digest)
    return ref


def split_search_term(term: str) -> tuple[str, str]:
    """(registry domain, remote term): `127.0.0.1:5000/foo` searches 127.0.0.1:5000 for foo."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", term


class DistributionService:
    def __init__(
        self,
        store: Any,
        events: Any,
        data_root: str | Path,
        *,
        insecure_registries: tuple[str, ...] = (),
        max_concurrent_downloads: int = DEFAULT_MAX_CONCURRENT_DOWNLOADS,
        max_concurrent_uploads: int = DEFAULT_MAX_CONCURRENT_UPLOADS,
    ) -> None:
        from dockyard.distribution.client.metadata import DistributionMetadata
        from dockyard.distribution.client.registry import RegistryOptions

        self.store = store
        self.events = events
        self.options = RegistryOptions(insecure=tuple(insecure_registries))
        self.max_concurrent_downloads = max_concurrent_downloads
        self.max_concurrent_uploads = max_concurrent_uploads
        self.metadata = DistributionMetadata(Path(data_root) / "distribution" / "metadata.json")
        self._registries: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def registry(self, domain: str, auth: AuthConfig | None) -> Any:
        """A Registry per (domain, credentials), kept so connections and tokens are reused across calls."""
        from dockyard.distribution.client.registry import Registry

        auth = auth or AuthConfig()
        key = (domain, auth.username, auth.password, auth.identity_token)
        with self._lock:
            registry = self._registries.get(key)
            if registry is None:
                registry = self._registries[key] = Registry(domain, auth, self.options)
                while len(self._registries) > _REGISTRY_CACHE:
                    self._registries.popitem(last=False)
            self._registries.move_to_end(key)
            return registry

    # -- streaming -----------------------------------------------------------------------------------
    @staticmethod
    def stream(job: Callable[[Emit], None]) -> Iterator[bytes]:
        """Run `job(emit)` in a thread; yield its messages as JSON lines, a failure as an error line."""
        messages: queue.Queue[Any] = queue.Queue()

        def run() -> None:
            try:
                job(messages.put)
            except DockyardError as exc:
                messages.put({"errorDetail": {"message": exc.message}, "error": exc.message})
            except Exception as exc:  # a bug must still end the stream with a message
                log.exception("registry operation failed")
                messages.put({"errorDetail": {"message": str(exc)}, "error": str(exc)})
            finally:
                messages.put(_DONE)

        threading.Thread(target=run, name="distribution", daemon=True).start()
        while (message := messages.get()) is not _DONE:
            yield json.dumps(message).encode() + b"\n"

    # -- pull ----------------------------------------------------------------------------------------
    def pull(self, ref: refs.Reference, auth: AuthConfig | None, emit: Emit, platform: str = "") -> None:
        """Pull a tag or digest, or every tag when `ref` is a bare name (docker's `pull --all-tags`)."""
        from dockyard.distribution.client.pull import Puller
        from dockyard.image.manifest import Platform

        wanted = Platform.parse(platform) if platform else None
        registry = self.registry(ref.domain, auth)
        puller = Puller(
            self.store,
            registry,
            emit,
            max_concurrent=self.max_concurrent_downloads,
            platform=wanted,
            metadata=self.metadata,
        )
        if ref.is_name_only():
            for tag in registry.tags(ref.path):
                self._pull_one(puller, refs.Reference(ref.domain, ref.path, tag))
            status(emit, f"Status: Downloaded newer image for {ref.familiar_name}")
            return
        result = self._pull_one(puller, ref)
        verdict = "Image is up to date" if result.up_to_date else "Downloaded newer image"
        status(emit, f"Status: {verdict} for {ref.familiar()}")

    def _pull_one(self, puller: Any, ref: refs.Reference) -> Any:
        result = puller.pull(ref)
        self.events.publish("image", "pull", ref.familiar(), {"name": ref.familiar()})
        return result

    # -- push ----------------------------------------------------------------------------------------
    def push(self, name: str, tag: str, auth: AuthConfig | None, emit: Emit) -> None:
        """Push one tag, or every local tag of the repository when no tag is given."""
        from dockyard.distribution.client.push import Pusher

        ref = refs.parse_normalized(name)
        if tag:
            targets = [refs.Reference(ref.domain, ref.path, refs.validate_tag(tag))]
        elif ref.tag:
            targets = [ref]
        else:
            targets = sorted({r for r, _ in self.store.references_by_name(ref.name) if r.tag and not r.digest}, key=str)
            if not targets:
                raise DockyardError(f"An image does not exist locally with the tag: {ref.familiar_name}")
        for target in targets:
            self.store.resolve(str(target))  # a missing image fails before anything is sent
        status(emit, f"The push refers to repository [{ref.name}]")
        pusher = Pusher(
            self.store,
            self.registry(ref.domain, auth),
            emit,
            metadata=self.metadata,
            max_concurrent=self.max_concurrent_uploads,
        )
        for target in targets:
            pusher.push(target)
            self.events.publish("image", "push", target.familiar(), {"name": target.familiar()})

    # -- login, search, inspect ----------------------------------------------------------------------
    def login(self, auth: AuthConfig) -> dict[str, str]:
        """Verify credentials against the registry (GET /v2/, answering its challenge)."""
        from dockyard.distribution.client.registry import Registry

        domain = domain_of_server(auth.server_address)
        Registry(domain, auth, self.options).ping()
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    def search(self, term: str, limit: int, filters: dict[str, list[str]], auth: AuthConfig | None) -> list[dict]:
        if not 1 <= limit <= 100:
            raise InvalidParameter(f"limit {limit} is outside the range of [1, 100]")
        for key in filters:
            if key not in ("is-official", "is-automated", "stars"):
                raise InvalidParameter(f"invalid filter '{key}'")
        min_stars = 0
        for value in filters.get("stars", []):
            try:
                min_stars = max(min_stars, int(value))
            except ValueError:
                raise InvalidParameter(f"invalid filter 'stars={value}'") from None
        domain, remote = split_search_term(term)
        host = "index.docker.io" if domain == "docker.io" else domain
        data = self.registry(host, auth).search(remote, limit)
        out = []
        for item in data.get("results") or []:
            if not isinstance(item, dict):
                continue
            result = {
                "star_count": int(item.get("star_count") or 0),
                "is_official": bool(item.get("is_official")),
                "name": str(item.get("name") or ""),
                "is_automated": False,
                "description": str(item.get("description") or ""),
            }
            if result["star_count"] < min_stars or not _bool_filter(filters, "is-official", result["is_official"]):
                continue
            if not _bool_filter(filters, "is-automated", False):
                continue
            out.append(result)
        return out[:limit]

    def inspect(self, name: str, auth: AuthConfig | None) -> dict[str, Any]:
        """GET /distribution/{name}/json: the descriptor a reference resolves to and its platforms."""
        from dockyard.distribution.client.pull import ACCEPT
        from dockyard.image import manifest as mf

        ref = refs.parse_docker_ref(name)
        registry = self.registry(ref.domain, auth)
        document = registry.get_manifest(ref.path, ref.digest or ref.tag or "latest", ACCEPT)
        doc = json.loads(document.data)
        media_type = mf.detect_media_type(doc)
        platforms: list[dict[str, str]] = []
        if media_type in mf.INDEX_TYPES:
            for desc in mf.parse_index(doc).manifests:
                if desc.platform is not None:
                    platforms.append(_platform_dict(desc.platform))
        else:
            config = json.loads(registry.get_blob(ref.path, mf.parse_manifest(doc).config.digest))
            platform = mf.Platform.from_dict(config)
            if platform is not None:
                platforms.append(_platform_dict(platform))
        return {
            "Descriptor": {"mediaType": media_type, "digest": document.digest, "size": len(document.data)},
            "Platforms": platforms,
        }


def _platform_dict(platform: Any) -> dict[str, str]:
    out = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        out["variant"] = platform.variant
    return out


def _bool_filter(filters: dict[str, list[str]], key: str, value: bool) -> bool:
    wanted = filters.get(key)
    if not wanted:
        return True
    return any((w.lower() in ("1", "true")) == value for w in wanted)
