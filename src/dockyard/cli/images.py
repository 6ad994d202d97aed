"""Image verbs: images, tag, rmi, history, import, save, load, pull."""

from __future__ import annotations

import sys
import time

from dockyard.cli.common import Cli, write_stream
from dockyard.cli.containers import parse_filters
from dockyard.cli.flags import FlagSet, StatusError


def cmd_images(cli: Cli, argv: list[str], name: str = "images") -> int:
    from dockyard.cli.formatting import IMAGES_DIGEST_TABLE, IMAGES_TABLE, ImageRow, expand_image_rows, render

    fs = (
        FlagSet(name, "[OPTIONS] [REPOSITORY[:TAG]]", "List images", max_args=1)
        .add("-a, --all", help="Show all images (default hides intermediate images)")
        .add("-q, --quiet", help="Only show image IDs")
        .add("--no-trunc", help="Don't truncate output")
        .add("--digests", help="Show digests")
        .add("-f, --filter", "list", help="Filter output based on conditions provided")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, args = fs.parse(argv)
    filters = parse_filters(opts.filter)
    if args:
        filters.setdefault("reference", []).append(args[0])
    images = cli.client.images(all=opts.all, filters=filters)
    fmt = opts.format or "table"
    if opts.quiet and fmt == "table":
        fmt = "{{.ID}}"
    default = IMAGES_DIGEST_TABLE if opts.digests else IMAGES_TABLE
    rows = expand_image_rows(images, trunc=not opts.no_trunc, now=time.time())
    cli.out.write(render(fmt, rows, ImageRow.headers, default))
    return 0


def split_tag(target: str) -> tuple[str, str]:
    from dockyard.cli.formatting import split_repo_tag

    repo, tag = split_repo_tag(target)
    return repo, tag or "latest"


def cmd_tag(cli: Cli, argv: list[str], name: str = "tag") -> int:
    fs = FlagSet(
        name,
        "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
        min_args=2,
        max_args=2,
    )
    _, (source, target) = fs.parse(argv)
    repo, tag = split_tag(target)
    cli.client.tag_image(source, repo, tag)
    return 0


def cmd_rmi(cli: Cli, argv: list[str], name: str = "rmi") -> int:
    from dockyard.client.errors import APIError

    fs = (
        FlagSet(name, "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", min_args=1)
        .add("-f, --force", help="Force removal of the image")
        .add("--no-prune", help="Do not delete untagged parents")
    )
    opts, args = fs.parse(argv)
    failed = False
    for image in args:
        try:
            deleted = cli.client.remove_image(image, force=opts.force, noprune=opts.no_prune)
        except APIError as exc:
            cli.error(str(exc))
            failed = True
            continue
        for item in deleted:
            if item.get("Untagged"):
                cli.print(f"Untagged: {item['Untagged']}")
            if item.get("Deleted"):
                cli.print(f"Deleted: {item['Deleted']}")
    return 1 if failed else 0


def cmd_history(cli: Cli, argv: list[str], name: str = "history") -> int:
    from dockyard.cli.formatting import HISTORY_TABLE, HistoryRow, render

    fs = (
        FlagSet(name, "[OPTIONS] IMAGE", "Show the history of an image", min_args=1, max_args=1)
        .add("-H, --human", default=True, help="Print sizes and dates in human readable format")
        .add("--no-trunc", help="Don't truncate output")
        .add("-q, --quiet", help="Only show image IDs")
        .add("--format", "str", help="Format output using a custom template")
    )
    opts, args = fs.parse(argv)
    history = cli.client.image_history(args[0])
    fmt = opts.format or "table"
    if opts.quiet and fmt == "table":
        fmt = "{{.ID}}"
    now = time.time()
    rows = [HistoryRow(h, trunc=not opts.no_trunc, human=opts.human, now=now) for h in history]
    cli.out.write(render(fmt, rows, HistoryRow.headers, HISTORY_TABLE))
    return 0


def _input_stream(path: str) -> object:
    """A file or stdin as a binary stream; the caller closes files it opened."""
    if path in ("", "-"):
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise StatusError(1, f"open {path}: {(exc.strerror or str(exc)).lower()}") from exc


def cmd_import(cli: Cli, argv: list[str], name: str = "import") -> int:
    from dockyard.cli.progress import display_messages

    fs = (
        FlagSet(
            name,
            "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
            "Import the contents from a tarball to create a filesystem image",
            min_args=1,
            max_args=2,
        )
        .add("-c, --change", "list", help="Apply Dockerfile instruction to the created image")
        .add("-m, --message", "str", help="Set commit message for imported image")
        .add("--platform", "str", help="Set platform if server is multi-platform capable")
    )
    opts, args = fs.parse(argv)
    source = args[0]
    repo, tag = split_tag(args[1]) if len(args) > 1 else (None, None)
    is_url = source.startswith(("http://", "https://"))
    stream = None if is_url else _input_stream(source)
    try:
        response = cli.client.import_image(
            stream,
            from_src=source if is_url else "-",
            repository=repo,
            tag=tag,
            message=opts.message or None,
            changes=opts.change,
            platform=opts.platform or None,
        )
        display_messages(response.iter_json(), cli.out, tty=False)
    finally:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()  # type: ignore[attr-defined]
    return 0


def cmd_save(cli: Cli, argv: list[str], name: str = "save") -> int:
    fs = FlagSet(
        name,
        "[OPTIONS] IMAGE [IMAGE...]",
        "Save one or more images to a tar archive (streamed to STDOUT by default)",
        min_args=1,
    ).add("-o, --output", "str", help="Write to a file, instead of STDOUT")
    opts, args = fs.parse(argv)
    if not opts.output and cli.out.isatty():
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    write_stream(cli.client.save_images(args).iter_chunks(), opts.output or None, cli)
    return 0


def cmd_load(cli: Cli, argv: list[str], name: str = "load") -> int:
    from dockyard.cli.progress import display_messages

    fs = (
        FlagSet(name, "[OPTIONS]", "Load an image from a tar archive or STDIN", max_args=0)
        .add("-i, --input", "str", help="Read from tar archive file, instead of STDIN")
        .add("-q, --quiet", help="Suppress the load output")
    )
    opts, _ = fs.parse(argv)
    if not opts.input and sys.stdin.isatty():
        raise StatusError(1, "requested load from stdin, but stdin is empty")
    stream = _input_stream(opts.input)
    try:
        response = cli.client.load_image(stream, quiet=opts.quiet or not cli.out.isatty())
        if response.content_type == "application/json":
            display_messages(response.iter_json(), cli.out, tty=cli.out.isatty())
        else:
            for chunk in response.iter_chunks():
                cli.out_binary.write(chunk)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()  # type: ignore[attr-defined]
    return 0


def cmd_pull(cli: Cli, argv: list[str], name: str = "pull") -> int:
    from dockyard.cli.registry_client import cmd_pull as pull

    return pull(cli, argv, name)
