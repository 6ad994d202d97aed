"""The image service: the image store plus what needs the rest of the daemon (events, in-use checks)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from dockyard.daemon.events import EventBus
from dockyard.errors import InvalidParameter


class ImageService:
    def __init__(self, store: Any, containers: Any, events: EventBus) -> None:
        self.store = store
        self.containers = containers
        self.events = events

    def _event(self, action: str, image_id: str, name: str = "") -> None:
        self.events.publish("image", action, name or image_id, {"name": name or image_id})

    def _in_use(self, image_id: str) -> str | None:
        """The id of a container using the image, running ones first (rmi's conflict rules need both)."""
        users = sorted(self.containers.image_users(image_id), key=lambda c: not c.running)
        return users[0].id if users else None

    def _running_user(self, image_id: str) -> str | None:
        users = [c for c in self.containers.image_users(image_id) if c.running]
        return users[0].id if users else None

    # -- queries -------------------------------------------------------------
    def list(
        self, all_: bool = False, filters: dict[str, list[str]] | None = None, digests: bool = False
    ) -> list[dict]:
        from dockyard.daemon.image_filters import image_matches

        images = sorted(self.store.list(), key=lambda i: i.created, reverse=True)
        out = []
        for image in images:
            if filters and not image_matches(image, filters, self.store):
                continue
            summary = self.store.summary(image)
            if not all_ and not summary["RepoTags"] and not summary["RepoDigests"] and self.store.children(image.id):
                continue  # an intermediate image (a build step): only `images -a` shows it, as docker does
            summary["Containers"] = len(self.containers.image_users(image.id))
            out.append(summary)
        return out

    def inspect(self, ref: str) -> dict:
        return self.store.inspect(self.store.resolve(ref))

    def history(self, ref: str) -> list[dict]:
        return self.store.history(self.store.resolve(ref))

    # -- changes ---------------------------------------------------------------
    def tag(self, ref: str, repo: str, tag: str) -> None:
        image = self.store.resolve(ref)
        target = f"{repo}:{tag}" if tag else repo
        self.store.tag(image, target)
        self._event("tag", image.id, target)

    def delete(self, ref: str, force: bool, prune: bool) -> list[dict]:
        items = self.store.delete(ref, force=force, prune=prune, in_use=self._in_use, running=self._running_user)
        for item in items:
            if "Untagged" in item:
                self._event("untag", item["Untagged"], item["Untagged"])
            if "Deleted" in item:
                self._event("delete", item["Deleted"])
        return items

    def import_tar(self, stream: BinaryIO, *, repo: str, tag: str, changes: list[str], message: str) -> Any:
        from dockyard.build.changes import apply_changes

        if tag and not repo:
            raise InvalidParameter("tag given without a repository")
        repo_tag = (f"{repo}:{tag}" if tag else repo) or None
        overlay = apply_changes({}, changes) if changes else None
        image = self.store.import_tar(
            stream,
            repo_tag=repo_tag,
            changes=overlay,
            message=message,
        )
        self._event("import", image.id, repo_tag or "")
        return image

    # -- archives -------------------------------------------------------------
    def save(self, refs: list[str]) -> Iterator[bytes]:
        from dockyard.daemon.containers import _stream_writer
        from dockyard.image.archive import save

        if not refs:
            raise InvalidParameter("no images specified")
        for ref in refs:
            self.store.resolve(ref)  # 404 before the stream starts
        return _stream_writer(lambda out: save(self.store, refs, out))

    def load(self, stream: BinaryIO) -> list[str]:
        from dockyard.image.archive import load

        lines = load(self.store, stream)
        for line in lines:
            self._event("load", line.rsplit(" ", 1)[-1])
        return lines
