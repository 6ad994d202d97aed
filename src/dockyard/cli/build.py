"""`dockyard build`: send a build context (.dockerignore applied) to the daemon's classic builder."""

from __future__ import annotations

import json
import os
import sys
import tempfile

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, StatusError

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass


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
    from dockyard.build.context import ContextError, stdin_context, write_context
    from dockyard.cli.progress import StreamError, display_messages

    opts, (path,) = build_flagset(name).parse(argv)
    if path != "-" and not os.path.isdir(path):
        raise StatusError(1, f'unable to prepare context: path "{path}" not found')
    build_args = {}
    for item in opts.build_arg:
        key, sep, value = item.partition("=")
        build_args[key] = value if sep else os.environ.get(key)  # docker: a bare NAME comes from our env
    with tempfile.TemporaryFile() as context:
        try:
            if path == "-":
                dockerfile = stdin_context(context, sys.stdin.buffer.read(), opts.file or "Dockerfile")
            else:
                dockerfile = write_context(context, path, opts.file or "")
        except ContextError as exc:
            raise StatusError(1, str(exc)) from None
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
