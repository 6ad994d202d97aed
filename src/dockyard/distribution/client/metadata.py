"""What the daemon remembers about blobs and registries, for faster pushes.

- sources: which repositories of which registry hold a blob (from pulls and pushes), so a push can
  ask for a cross-repository mount instead of uploading;
- compressed: the gzip blob pushed for an uncompressed layer (by diff id), so a later push can HEAD it
  before compressing the layer again (gzip with mtime 0 at a fixed level is deterministic).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from dockyard.util.fs import read_json, write_json

_MAX_SOURCES = 8


class DistributionMetadata:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        data = read_json(self.path, default={}) or {}
        self._sources: dict[str, list[str]] = dict(data.get("sources") or {})
        self._compressed: dict[str, dict[str, Any]] = dict(data.get("compressed") or {})

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"sources": self._sources, "compressed": self._compressed})

    def add_source(self, digest: str, host: str, repo: str) -> None:
        entry = f"{host}/{repo}"
        with self._lock:
            known = self._sources.setdefault(digest, [])
            if entry in known:
                return
            known.insert(0, entry)
            del known[_MAX_SOURCES:]
            self._save()

    def sources(self, digest: str, host: str) -> list[str]:
        """Repositories of `host` known to hold the blob (most recent first)."""
        prefix = host + "/"
        with self._lock:
            return [s[len(prefix) :] for s in self._sources.get(digest, []) if s.startswith(prefix)]

    def compressed(self, diff_id: str) -> tuple[str, int, str] | None:
        with self._lock:
            entry = self._compressed.get(diff_id)
        if not entry:
            return None
        return str(entry["digest"]), int(entry["size"]), str(entry["media_type"])

    def set_compressed(self, diff_id: str, digest: str, size: int, media_type: str) -> None:
        with self._lock:
            self._compressed[diff_id] = {"digest": digest, "size": size, "media_type": media_type}
            self._save()
