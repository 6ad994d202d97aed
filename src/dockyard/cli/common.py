"""What every verb shares: the client, output streams, docker's error reporting."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable

from dockyard.cli.flags import StatusError

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

    from dockyard.client.api import APIClient


class Cli:
    """Per-invocation state: the daemon address and lazily a connected APIClient."""

    def __init__(self, host: str | None = None, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.host_arg = host
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        if self._client is None:
            from dockyard.client.api import APIClient
            from dockyard.client.autostart import ensure_daemon
            from dockyard.client.transport import default_host, parse_host

            host = parse_host(self.host_arg) if self.host_arg else default_host()
            ensure_daemon(host)
            self._client = APIClient(host)
        return self._client

    @property
    def out_binary(self) -> BinaryIO:
        return getattr(self.out, "buffer", self.out)  # type: ignore[return-value]

    @property
    def err_binary(self) -> BinaryIO:
        return getattr(self.err, "buffer", self.err)  # type: ignore[return-value]

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def error(self, text: str) -> None:
        self.err.write(text + "\n")


def each(cli: Cli, names: Iterable[str], action: Callable[[str], Any], echo: bool = True) -> int:
    """Apply `action` to every name, continue past failures (printed), exit 1 if any failed."""
    from dockyard.client.errors import APIError

    failed = False
    for name in names:
        try:
            action(name)
        except APIError as exc:
            cli.error(str(exc))
            failed = True
            continue
        if echo:
            cli.print(name)
    return 1 if failed else 0


def write_stream(chunks: Iterable[bytes], output: str | None, cli: Cli) -> None:
    """Write a tar stream to `-o` (temp file then rename, so no torn file) or to a non-tty stdout."""
    if output:
        import tempfile

        directory = os.path.dirname(os.path.abspath(output))
        fd, tmp = tempfile.mkstemp(prefix=".dockyard-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as sink:
                for chunk in chunks:
                    sink.write(chunk)
            os.chmod(tmp, 0o644)
            os.replace(tmp, output)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    if cli.out.isatty():
        raise StatusError(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect")
    sink = cli.out_binary
    for chunk in chunks:
        sink.write(chunk)
    sink.flush()


def isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
