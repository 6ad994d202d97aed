"""The build context a client sends to `POST /build`: a directory tarred with .dockerignore applied,
or what came on stdin. Shared by `dockyard build` and `dockyard compose build`."""

from __future__ import annotations

import io
import os
import tarfile
import uuid

from dockyard.build.dockerignore import IgnoreMatcher, read_patterns

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


class ContextError(ValueError):
    """The context cannot be prepared (docker's "unable to prepare context: ..." messages)."""


def stdin_context(out: BinaryIO, data: bytes, dockerfile: str) -> str:
    """`build -`: what came on stdin is a tar context (sent as it is) or a Dockerfile (sent as the
    only file of an otherwise empty context), as docker's CLI tells them apart."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)):
            is_tar = True
    except tarfile.TarError:
        is_tar = False
    if is_tar:
        out.write(data)
        return dockerfile
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return "Dockerfile"


def write_context(out: BinaryIO, path: str, dockerfile: str) -> str:
    """Tar the context directory into `out`, leaving out what .dockerignore excludes (but never the
    Dockerfile or .dockerignore, as docker's CLI); a Dockerfile outside the context is added under a
    generated name. Returns the Dockerfile's name inside the context."""
    root = os.path.abspath(path)
    dockerfile_path = os.path.abspath(dockerfile) if dockerfile else os.path.join(root, "Dockerfile")
    if dockerfile and not os.path.isabs(dockerfile) and not os.path.exists(dockerfile_path):
        dockerfile_path = os.path.join(root, dockerfile)  # -f relative to the context, as docker tries too
    if not os.path.isfile(dockerfile_path):
        raise ContextError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                           f"lstat {dockerfile_path}: no such file or directory")  # fmt: skip
    inside = os.path.commonpath([root, dockerfile_path]) == root
    name = os.path.relpath(dockerfile_path, root) if inside else f".dockerfile.{uuid.uuid4().hex[:20]}"
    try:
        with open(os.path.join(root, ".dockerignore")) as f:
            matcher = IgnoreMatcher(read_patterns(f.read()))
    except FileNotFoundError:
        matcher = IgnoreMatcher([])
    always = {name, ".dockerignore"}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, dirs, files in os.walk(root):
            rel_dir = os.path.relpath(directory, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            kept_dirs = []
            for sub in sorted(dirs):
                rel = os.path.join(rel_dir, sub)
                if matcher.excluded(rel) and not matcher.needs_walk(rel):
                    continue
                if not matcher.excluded(rel):
                    tar.add(os.path.join(directory, sub), arcname=rel, recursive=False)
                kept_dirs.append(sub)
            dirs[:] = kept_dirs
            for file_name in sorted(files):
                rel = os.path.join(rel_dir, file_name)
                if rel in always or not matcher.excluded(rel):
                    tar.add(os.path.join(directory, file_name), arcname=rel, recursive=False)
        if not inside:
            tar.add(dockerfile_path, arcname=name, recursive=False)
    return name
