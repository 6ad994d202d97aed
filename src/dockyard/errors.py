"""Error classes shared by every layer; the API maps each to the HTTP status docker uses.

Modelled on moby's errdefs: the class says what kind of failure it is, the message is what the
user sees (docker's wording where scripts depend on it).
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class; `status` is the HTTP status the Engine API answers with."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(DockyardError):
    status = 400


class NotFound(DockyardError):
    status = 404


class Conflict(DockyardError):
    status = 409


class NotModified(DockyardError):
    status = 304


class Unauthorized(DockyardError):
    status = 401


class Forbidden(DockyardError):
    status = 403


class Unavailable(DockyardError):
    status = 503


class ImageNotFound(NotFound):
    """docker: `No such image: busybox:latest`."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such image: {ref}")
        self.ref = ref


class ContainerNotFound(NotFound):
    """docker: `No such container: web`."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"No such container: {ref}")
        self.ref = ref


class DigestMismatch(InvalidParameter):
    """A blob's content does not hash to the digest it was announced with."""
