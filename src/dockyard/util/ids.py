"""Identifiers shaped like Docker's: 64 hex characters, shown truncated to 12."""

from __future__ import annotations

import secrets


def new_id() -> str:
    """A random 256-bit identifier in lowercase hex, as docker gives containers and execs."""
    return secrets.token_hex(32)


def short_id(full: str) -> str:
    """The 12-character form docker prints (a `sha256:` prefix is dropped first)."""
    return full.removeprefix("sha256:")[:12]
