"""`dockyard registry gc`: mark every blob a manifest of any repository references, sweep the rest.

Like distribution's garbage collector, run it while nothing is pushed: a blob uploaded but not yet
referenced by its manifest looks like garbage. `min_age` (seconds) keeps blobs younger than that
as a safety margin for a registry that keeps serving. Uploads abandoned for longer than
`upload_age` (a crashed client, a killed server) are removed too.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.distribution.server.paths import is_digest
from dockyard.distribution.server.storage import Storage

DEFAULT_MIN_AGE = 3600.0
DEFAULT_UPLOAD_AGE = 86400.0


@dataclass
class GcResult:
    marked: set[str] = field(default_factory=set)
    blobs: list[str] = field(default_factory=list)  # deleted (or, dry-run, eligible)
    manifests: list[str] = field(default_factory=list)  # "repo@digest" untagged manifests removed
    uploads: list[str] = field(default_factory=list)
    freed: int = 0


def _links(directory: str) -> list[str]:
    """Digests named by `<alg>/<hex>` entries under a links directory."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for alg in os.listdir(directory):
            with contextlib.suppress(NotADirectoryError):
                out += [f"{alg}:{h}" for h in os.listdir(f"{directory}/{alg}") if is_digest(f"{alg}:{h}")]
    return out


def _all_repositories(storage: Storage) -> list[str]:
    """Repositories with manifests or only blob links (an abandoned push)."""
    top = storage.paths.repositories
    out = []
    for dirpath, dirnames, _ in os.walk(top):
        if "_manifests" in dirnames or "_layers" in dirnames:
            out.append(os.path.relpath(dirpath, top))
        dirnames[:] = [d for d in dirnames if not d.startswith("_")]
    return sorted(out)


def collect(
    root: str,
    dry_run: bool = False,
    delete_untagged: bool = False,
    min_age: float = DEFAULT_MIN_AGE,
    upload_age: float = DEFAULT_UPLOAD_AGE,
    report: Callable[[str], None] = lambda line: None,
) -> GcResult:
    storage = Storage(root)
    paths = storage.paths
    result = GcResult()
    repos = _all_repositories(storage)
    for repo in repos:
        tagged = _tagged(storage, repo) if delete_untagged else set()
        for digest in _links(paths.revisions(repo)):
            if delete_untagged and digest not in tagged:
                report(f"{repo}: manifest eligible for deletion: {digest}")
                result.manifests.append(f"{repo}@{digest}")
                if not dry_run:
                    storage.delete_manifest(repo, digest)
                continue
            _mark_manifest(storage, repo, digest, result, report)
    now = time.time()
    for digest in _links(paths.blobs):
        if digest in result.marked:
            continue
        path = paths.blob(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if now - st.st_mtime < min_age:
            report(f"blob kept (younger than {min_age:g}s): {digest}")
            continue
        report(f"blob eligible for deletion: {digest}")
        result.blobs.append(digest)
        result.freed += st.st_size
        if not dry_run:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if not dry_run:
        _drop_dangling_links(storage, repos, set(result.blobs))
    result.uploads = _stale_uploads(storage, now - upload_age, dry_run, report)
    report(
        f"{len(result.marked)} blobs marked, {len(result.blobs)} blobs and {len(result.manifests)} manifests "
        f"eligible for deletion, {len(result.uploads)} stale uploads, {result.freed} bytes"
        f"{' would be' if dry_run else ''} freed"
    )
    return result


def _tagged(storage: Storage, repo: str) -> set[str]:
    out = set()
    for tag in storage.tags(repo):
        with contextlib.suppress(FileNotFoundError), open(storage.paths.tag(repo, tag), "rb") as f:
            out.add(f.read().decode().strip())
    return out


def _mark_manifest(storage: Storage, repo: str, digest: str, result: GcResult, report: Callable[[str], None]) -> None:
    report(f"{repo}: marking manifest {digest}")
    result.marked.add(digest)
    try:
        with open(storage.paths.blob(digest), "rb") as f:
            doc = json.load(f)
    except (FileNotFoundError, ValueError):
        return
    descriptors = [doc.get("config"), *(doc.get("layers") or [])]
    for desc in descriptors:
        if isinstance(desc, dict) and is_digest(str(desc.get("digest"))) and desc["digest"] not in result.marked:
            report(f"{repo}: marking blob {desc['digest']}")
            result.marked.add(desc["digest"])
    for child in doc.get("manifests") or []:  # an index: its children are revisions too, mark them anyway
        if isinstance(child, dict) and is_digest(str(child.get("digest"))):
            result.marked.add(child["digest"])


def _drop_dangling_links(storage: Storage, repos: list[str], deleted: set[str]) -> None:
    """Blob links and referrer records that point at swept content go too."""
    for repo in repos:
        for digest in _links(f"{storage.paths.repo(repo)}/_layers"):
            if digest in deleted:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(storage.paths.layer_link(repo, digest))
        referrers = f"{storage.paths.repo(repo)}/_referrers"
        for subject in _links(referrers):
            d = storage.paths.referrers(repo, subject)
            for entry in os.listdir(d):
                alg = subject.partition(":")[0]
                if not os.path.exists(storage.paths.revision_link(repo, f"{alg}:{entry}")):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{d}/{entry}")


def _stale_uploads(storage: Storage, cutoff: float, dry_run: bool, report: Callable[[str], None]) -> list[str]:
    out = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(storage.paths.uploads):
            path = f"{storage.paths.uploads}/{entry}"
            try:
                mtime = max(os.stat(p).st_mtime for p in (path, *(f"{path}/{n}" for n in _listdir(path))))
            except FileNotFoundError:
                continue
            if mtime >= cutoff:
                continue
            report(f"stale upload eligible for deletion: {entry}")
            out.append(entry)
            if not dry_run:
                _remove_tree(path)
    return out


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except NotADirectoryError:
        return []


def _remove_tree(path: str) -> None:
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
