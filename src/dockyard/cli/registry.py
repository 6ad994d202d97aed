"""`dockyard registry`: run dockyard's own registry server, collect its garbage, manage htpasswd users."""

from __future__ import annotations

import sys

from dockyard.cli.common import Cli
from dockyard.cli.flags import FlagSet, StatusError

USAGE = """
Usage:  dockyard registry COMMAND

Run and maintain a container registry (OCI distribution spec)

Commands:
  serve       Serve a registry over HTTP(S)
  gc          Delete blobs no manifest references
  htpasswd    Add or update a user in an htpasswd file (bcrypt)

Run 'dockyard registry COMMAND --help' for more information on a command.
"""


def cmd_registry(cli: Cli, argv: list[str], name: str = "registry") -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    sub = {"serve": _serve, "gc": _gc, "htpasswd": _htpasswd}.get(argv[0])
    if sub is None:
        raise StatusError(
            1,
            f"dockyard: unknown command: dockyard registry {argv[0]}\n\n"
            "Run 'dockyard registry --help' for more information",
        )
    return sub(argv[1:], f"{name} {argv[0]}")


def _serve(argv: list[str], name: str) -> int:
    import logging
    import signal

    from dockyard.distribution.server.serve import RegistryConfig, create_server, parse_addr

    fs = (
        FlagSet(name, "[OPTIONS]", "Serve a registry over HTTP(S)", max_args=0)
        .add("--addr", "str", "127.0.0.1:5000", "Address to listen on (HOST:PORT)")
        .add("--root", "str", "/var/lib/dockyard-registry", "Storage root directory")
        .add("--htpasswd", "str", "", "htpasswd file (bcrypt) for Basic auth, and the token endpoint's users")
        .add("--config", "str", "", 'JSON file with access rules: {"acl": [{"account","name","actions"}]}')
        .add("--tls-cert", "str", "", "TLS certificate (PEM)")
        .add("--tls-key", "str", "", "TLS private key (PEM)")
        .add("--token-realm", "str", "", "Enable token auth; the token endpoint URL (served here)")
        .add("--token-issuer", "str", "dockyard-registry", "Issuer name in tokens")
        .add("--token-service", "str", "", "Service name (default: the listen address)")
        .add("--token-key", "str", "", "Token signing key (PEM, EC P-256 or RSA; created if missing)")
        .add("--log-level", "str", "warning", "Log level (debug, info, warning, error)")
    )
    opts, _ = fs.parse(argv)
    if bool(opts.tls_cert) != bool(opts.tls_key):
        raise StatusError(1, "--tls-cert and --tls-key go together")
    logging.basicConfig(level=opts.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_addr(opts.addr)
        config = RegistryConfig(
            root=opts.root,
            host=host,
            port=port,
            htpasswd=opts.htpasswd or None,
            config=opts.config or None,
            tls_cert=opts.tls_cert or None,
            tls_key=opts.tls_key or None,
            token_realm=opts.token_realm or None,
            token_issuer=opts.token_issuer,
            token_service=opts.token_service or None,
            token_key=opts.token_key or None,
        )
        server = create_server(config)
    except (OSError, ValueError) as exc:
        raise StatusError(1, f"registry: {exc}") from None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    scheme = "https" if opts.tls_cert else "http"
    bound_host, bound_port = server.server_address
    sys.stderr.write(f"registry listening on {scheme}://{bound_host}:{bound_port} (root {opts.root})\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return 0


def _gc(argv: list[str], name: str) -> int:
    from dockyard.distribution.server.gc import DEFAULT_MIN_AGE, DEFAULT_UPLOAD_AGE, collect

    fs = (
        FlagSet(name, "[OPTIONS]", "Delete blobs no manifest references (run while nothing is pushed)", max_args=0)
        .add("--root", "str", "/var/lib/dockyard-registry", "Storage root directory")
        .add("-d, --dry-run", help="Only report what would be deleted")
        .add("-m, --delete-untagged", help="Delete manifests that no tag names")
        .add("--min-age", "str", str(int(DEFAULT_MIN_AGE)), "Keep blobs younger than this many seconds")
        .add(
            "--upload-age", "str", str(int(DEFAULT_UPLOAD_AGE)), "Delete uploads idle for longer than this many seconds"
        )
        .add("-q, --quiet", help="Print only the summary")
    )
    opts, _ = fs.parse(argv)
    try:
        min_age, upload_age = float(opts.min_age), float(opts.upload_age)
    except ValueError:
        raise StatusError(125, "--min-age and --upload-age take seconds") from None
    lines: list[str] = []

    def report(line: str) -> None:
        lines.append(line)
        if not opts.quiet:
            sys.stdout.write(line + "\n")

    collect(
        opts.root,
        dry_run=opts.dry_run,
        delete_untagged=opts.delete_untagged,
        min_age=min_age,
        upload_age=upload_age,
        report=report,
    )
    if opts.quiet and lines:
        sys.stdout.write(lines[-1] + "\n")
    return 0


def _htpasswd(argv: list[str], name: str) -> int:
    import os

    from dockyard.distribution.server.auth import hash_password
    from dockyard.util.fs import atomic_write

    fs = (
        FlagSet(
            name, "[OPTIONS] FILE USER", "Add or update a user in an htpasswd file (bcrypt)", min_args=2, max_args=2
        )
        .add("-p, --password", "str", "", "Password (prefer --password-stdin)")
        .add("--password-stdin", help="Read the password from stdin")
    )
    opts, (path, user) = fs.parse(argv)
    password = sys.stdin.readline().rstrip("\r\n") if opts.password_stdin else opts.password
    if not password or ":" in user or not user:
        raise StatusError(1, "a user name without ':' and a non-empty password are required")
    lines = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip() and not line.startswith(f"{user}:")]
    lines.append(f"{user}:{hash_password(password)}")
    atomic_write(path, ("\n".join(lines) + "\n").encode(), mode=0o600)
    return 0
