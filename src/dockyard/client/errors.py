"""Errors the Engine API client raises; the CLI turns them into docker's messages and exit codes."""

from __future__ import annotations


class ClientError(Exception):
    """Base class for every failure seen by the client."""


class APIError(ClientError):
    """The daemon answered with an error status and a JSON `{"message": ...}` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    def __str__(self) -> str:
        return f"Error response from daemon: {self.message}"


class StreamError(ClientError):
    """An error reported in-band in a JSON progress stream (`errorDetail`)."""


class DaemonUnavailable(ClientError):
    """Nothing answers at the daemon address (docker: `Cannot connect to the Docker daemon`)."""

    def __init__(self, host_url: str) -> None:
        super().__init__(f"Cannot connect to the dockyard daemon at {host_url}. Is the dockyard daemon running?")
        self.host_url = host_url
