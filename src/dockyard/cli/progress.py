"""Render JSON message streams (pull, load, import) as docker's jsonmessage does."""

from __future__ import annotations

from collections.abc import Iterable

from dockyard.cli.units import human_size
from dockyard.client.errors import StreamError

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


def _progress_text(message: dict[str, Any]) -> str:
    if message.get("progress"):
        return str(message["progress"])
    detail = message.get("progressDetail") or {}
    current, total = detail.get("current"), detail.get("total")
    if current is None:
        return ""
    return f"{human_size(current)}/{human_size(total)}" if total else human_size(current)


def display_messages(messages: Iterable[dict[str, Any]], out: TextIO, tty: bool = False) -> list[Any]:
    """Print each message; on a terminal keep one line per layer id. Returns the `aux` payloads.

    An in-band error (`errorDetail`/`error`) raises StreamError with docker's message.
    """
    aux: list[Any] = []
    lines: dict[str, int] = {}
    for message in messages:
        if message.get("errorDetail") or message.get("error"):
            detail = message.get("errorDetail") or {}
            raise StreamError(detail.get("message") or message.get("error") or "unknown error")
        if "aux" in message:
            aux.append(message["aux"])
            continue
        if message.get("stream") is not None:
            out.write(message["stream"])
            continue
        layer = message.get("id") or ""
        text = (f"{layer}: " if layer else "") + str(message.get("status", ""))
        if tty:
            progress = _progress_text(message)
            text += f" {progress}" if progress else ""
        if tty and layer:
            if layer not in lines:
                lines[layer] = len(lines)
                out.write("\n")
            up = len(lines) - lines[layer]
            out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
        else:
            if not layer:
                lines.clear()
            out.write(text + "\n")
        out.flush()
    return aux
