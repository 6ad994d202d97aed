"""Registry verbs: push, login, logout, search, and the shared pull rendering.

Credentials live client-side, as with docker: `login` asks the daemon to verify them (POST /auth) and
then stores them; pull and push send the stored ones in X-Registry-Auth.
"""

from __future__ import annotations

import sys

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, StatusError
from dockyard.cli.template import FieldProvider

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SEARCH_TABLE = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
_DESCRIPTION_WIDTH = 45


def auth_for(image: str) -> dict[str, Any] | None:
    """The stored credentials for an image's registry, as X-Registry-Auth wants them."""
    from dockyard.image.reference import parse_normalized

    return auth_for_registry(parse_normalized(image).domain)


def auth_for_registry(domain: str) -> dict[str, Any] | None:
    from dockyard.distribution.client.credentials import load_auth

    found = load_auth(domain)
    return found.to_api() if found is not None else None


def search_registry(term: str) -> str:
    """The registry a search term names (`127.0.0.1:5000/foo`), Docker Hub otherwise."""
    first, sep, _ = term.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else "docker.io"


def render_progress(cli: Cli, response: Any, quiet: bool, out: Any = None) -> list[Any]:
    """Show a pull/push JSON stream like docker (one line per layer on a tty); returns `aux` payloads."""
    from dockyard.cli.progress import display_messages

    out = out or cli.out
    messages = response.iter_json()
    if quiet:
        aux = []
        for message in messages:
            if message.get("errorDetail") or message.get("error"):
                display_messages([message], out)
            if "aux" in message:
                aux.append(message["aux"])
        return aux
    return display_messages(messages, out, tty=out.isatty())


def _stream_errors(run: Any) -> None:
    """An in-band error ends the verb with docker's exit status 1 and its message."""
    from dockyard.client.errors import StreamError

    try:
        run()
    except StreamError as exc:
        raise StatusError(1, str(exc)) from None


def cmd_pull(cli: Cli, argv: list[str], name: str = "pull") -> int:
    from dockyard.image.reference import ReferenceError, parse_normalized

    fs = (
        FlagSet(name, "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", min_args=1, max_args=1)
        .add("-a, --all-tags", help="Download all tagged images in the repository")
        .add("-q, --quiet", help="Suppress verbose output")
        .add("--platform", "str", help="Set platform if server is multi-platform capable")
    )
    opts, args = fs.parse(argv)
    try:
        ref = parse_normalized(args[0])
    except ReferenceError as exc:
        raise StatusError(
            1, f"invalid reference format: {exc}" if "invalid reference" not in str(exc) else str(exc)
        ) from None
    if opts.all_tags and (ref.tag or ref.digest):
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    tag: str | None
    if opts.all_tags:
        tag = None
    elif ref.digest:
        tag = ref.digest
    else:
        if not ref.tag and not opts.quiet:
            cli.print("Using default tag: latest")
        tag = ref.tag or "latest"
    response = cli.client.pull_image(ref.familiar_name, tag, platform=opts.platform or None, auth=auth_for(args[0]))
    _stream_errors(lambda: render_progress(cli, response, opts.quiet))
    if not opts.all_tags:
        shown = ref.name + (f"@{ref.digest}" if ref.digest else f":{tag}")
        cli.print(shown)
    return 0


def cmd_push(cli: Cli, argv: list[str], name: str = "push") -> int:
    from dockyard.image.reference import parse_normalized

    fs = (
        FlagSet(name, "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", min_args=1, max_args=1)
        .add("-a, --all-tags", help="Push all tags of an image to the repository")
        .add("-q, --quiet", help="Suppress verbose output")
        .add("--platform", "str", help="Push a platform-specific manifest as a single-platform image")
    )
    opts, args = fs.parse(argv)
    ref = parse_normalized(args[0])
    if ref.digest:
        raise StatusError(1, "invalid argument: cannot push a digest reference")
    if opts.all_tags and ref.tag:
        raise StatusError(1, "tag can't be used with --all-tags/-a")
    tag = None if opts.all_tags else ref.tag
    if tag is None and not opts.all_tags:
        if not opts.quiet:
            cli.print("Using default tag: latest")
        tag = "latest"
    response = cli.client.push_image(ref.familiar_name, tag, auth=auth_for(args[0]))
    _stream_errors(lambda: render_progress(cli, response, opts.quiet))
    if opts.quiet:
        cli.print(ref.familiar_name + (f":{tag}" if tag else ""))
    return 0


def _read_password_stdin() -> str:
    data = sys.stdin.read()
    return data.rstrip("\n").rstrip("\r")


def cmd_login(cli: Cli, argv: list[str], name: str = "login") -> int:
    from dockyard.distribution.client.credentials import DOCKER_HUB_INDEX, AuthConfig, registry_key, save_auth

    fs = (
        FlagSet(
            name,
            "[OPTIONS] [SERVER]",
            "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.",
            max_args=1,
        )
        .add("-u, --username", "str", help="Username")
        .add("-p, --password", "str", help="Password or Personal Access Token (PAT)")
        .add("--password-stdin", help="Take the Password or Personal Access Token (PAT) from stdin")
    )
    opts, args = fs.parse(argv)
    server = registry_key(args[0]) if args else DOCKER_HUB_INDEX
    username, password = opts.username, opts.password
    if opts.password_stdin:
        if password:
            raise StatusError(1, "--password and --password-stdin are mutually exclusive")
        if not username:
            raise StatusError(1, "Must provide --username with --password-stdin")
        password = _read_password_stdin()
    elif password:
        cli.error("WARNING! Using --password via the CLI is insecure. Use --password-stdin.")
    if not username or not password:
        username, password = _prompt(cli, username, password)
    auth = AuthConfig(username, password, "", server)
    result = cli.client.login(auth.to_api())
    token = (result or {}).get("IdentityToken") or ""
    path = save_auth(server, AuthConfig(username, "" if token else password, token, server))
    if not token:
        cli.error(f"WARNING! Your credentials are stored unencrypted in '{path}'.")
    cli.print((result or {}).get("Status") or "Login Succeeded")
    return 0


def _prompt(cli: Cli, username: str, password: str) -> tuple[str, str]:
    """Interactive login, only on a terminal (docker refuses otherwise)."""
    import getpass

    if not sys.stdin.isatty():
        raise StatusError(1, "Error: Cannot perform an interactive login from a non TTY device")
    if not username:
        cli.out.write("Username: ")
        cli.out.flush()
        username = sys.stdin.readline().strip()
        if not username:
            raise StatusError(1, "Error: Non-null Username Required")
    if not password:
        password = getpass.getpass("Password: ")
        if not password:
            raise StatusError(1, "Error: Password Required")
    return username, password


def cmd_logout(cli: Cli, argv: list[str], name: str = "logout") -> int:
    from dockyard.distribution.client.credentials import DOCKER_HUB_INDEX, registry_key, remove_auth

    fs = FlagSet(
        name,
        "[SERVER]",
        "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.",
        max_args=1,
    )
    _, args = fs.parse(argv)
    server = registry_key(args[0]) if args else DOCKER_HUB_INDEX
    if not remove_auth(server):
        cli.print(f"Not logged in to {server}")
        return 0
    cli.print(f"Removing login credentials for {server}")
    return 0


class SearchRow(FieldProvider):
    """One `search` result (docker's searchContext)."""

    fields = ("Name", "Description", "StarCount", "IsOfficial", "IsAutomated")
    headers = {
        "Name": "NAME",
        "Description": "DESCRIPTION",
        "StarCount": "STARS",
        "IsOfficial": "OFFICIAL",
        "IsAutomated": "AUTOMATED",
    }

    def __init__(self, result: dict[str, Any], trunc: bool) -> None:
        self.r = result
        self.trunc = trunc

    def Name(self) -> str:
        return str(self.r.get("name", ""))

    def Description(self) -> str:
        from dockyard.cli.formatting import ellipsis

        text = str(self.r.get("description") or "").replace("\n", " ").replace("\r", " ")
        return ellipsis(text, _DESCRIPTION_WIDTH) if self.trunc else text

    def StarCount(self) -> str:
        return str(self.r.get("star_count", 0))

    def IsOfficial(self) -> str:
        return "[OK]" if self.r.get("is_official") else ""

    def IsAutomated(self) -> str:
        return "[OK]" if self.r.get("is_automated") else ""


def cmd_search(cli: Cli, argv: list[str], name: str = "search") -> int:
    from dockyard.cli.containers import parse_filters
    from dockyard.cli.formatting import render

    fs = (
        FlagSet(name, "[OPTIONS] TERM", "Search Docker Hub for images", min_args=1, max_args=1)
        .add("-f, --filter", "list", help="Filter output based on conditions provided")
        .add("--format", "str", help="Pretty-print search using a Go template")
        .add("--limit", "int", help="Max number of search results")
        .add("--no-trunc", help="Don't truncate output")
    )
    opts, args = fs.parse(argv)
    term = args[0]
    results = cli.client.search_images(
        term,
        limit=opts.limit or None,
        filters=parse_filters(opts.filter),
        auth=auth_for_registry(search_registry(term)),
    )
    rows = [SearchRow(r, trunc=not opts.no_trunc) for r in results]
    cli.out.write(render(opts.format or "table", rows, SearchRow.headers, SEARCH_TABLE))
    return 0
