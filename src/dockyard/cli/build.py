"""`dockyard build`: send a build context (.dockerignore applied) to the daemon's classic builder."""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
import uuid

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, StatusError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO


def build_flagset(name: str) -> FlagSet:
    return (
        FlagSet(name, "[OPTIONS] PATH | -", "Build an image from a Dockerfile", min_args=1, max_args=1)
        .add("-t, --tag", "list", help='Name and optionally a tag in the "name:tag" format')
        .add("-f, --file", "str", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
        .add("--build-arg", "list", help="Set build-time variables")
        .add("--no-cache", help="Do not use cache when building the image")
        .add("--target", "str", help="Set the target build stage to build")
        .add("-q, --quiet", help="Suppress the build output and print image ID on success")
        .add("--label", "list", help="Set metadata for an image")
        .add("--network", "str", help="Set the networking mode for the RUN instructions during build")
        .add("--pull", help="Always attempt to pull a newer version of the image")
        .add("--rm", default=True, help="Remove intermediate containers after a successful build")
        .add("--force-rm", help="Always remove intermediate containers")
    )


def cmd_build(cli: Cli, argv: list[str], name: str = "build") -> int:
    from dockyard.cli.progress import StreamError, display_messages

    opts, (path,) = build_flagset(name).parse(argv)
    if path != "-" and not os.path.isdir(path):
        raise StatusError(1, f'unable to prepare context: path "{path}" not found')
    build_args = {}
    for item in opts.build_arg:
        key, sep, value = item.partition("=")
        build_args[key] = value if sep else os.environ.get(key)  # docker: a bare NAME comes from our env
    with tempfile.TemporaryFile() as context:
        if path == "-":
            dockerfile = stdin_context(context, opts.file or "Dockerfile")
        else:
            dockerfile = write_context(context, path, opts.file or "")
        context.seek(0)
        params = {
            "t": opts.tag or None,
            "dockerfile": dockerfile,
            "buildargs": json.dumps(build_args) if build_args else None,
            "nocache": opts.no_cache or None,
            "target": opts.target or None,
            "q": opts.quiet or None,
            "labels": json.dumps(dict(label.partition("=")[::2] for label in opts.label)) if opts.label else None,
            "networkmode": opts.network or None,
            "pull": opts.pull or None,
            "rm": opts.rm,
            "forcerm": opts.force_rm or None,
        }
        response = cli.client.build(context, params)
        try:
            display_messages(response.iter_json(), cli.out, tty=False)
        except StreamError as exc:
            raise StatusError(1, str(exc)) from None
    return 0


def stdin_context(out: BinaryIO, dockerfile: str) -> str:
    """`build -`: stdin is a tar context (sent as it is) or a Dockerfile (sent as the only file of an
    otherwise empty context), as docker's CLI tells them apart."""
    import io

    data = sys.stdin.buffer.read()
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
    from dockyard.build.dockerignore import IgnoreMatcher, read_patterns

    root = os.path.abspath(path)
    dockerfile_path = os.path.abspath(dockerfile) if dockerfile else os.path.join(root, "Dockerfile")
    if dockerfile and not os.path.isabs(dockerfile) and not os.path.exists(dockerfile_path):
        dockerfile_path = os.path.join(root, dockerfile)  # -f relative to the context, as docker tries too
    if not os.path.isfile(dockerfile_path):
        raise StatusError(1, f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
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
