"""Image references parsed and normalised the way docker's distribution/reference does.

Scripts depend on docker's normalisation (`busybox` is `docker.io/library/busybox:latest`) and on its
error texts, so both follow the Go implementation's grammar and messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockyard.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"

_REFERENCE_RE = re.compile(rf"^({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?$")
_ANCHORED_NAME_RE = re.compile(rf"^(?:({_DOMAIN})/)?({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_IDENTIFIER_RE = re.compile(r"^[a-f0-9]{64}$")
_DIGEST_RE = re.compile(rf"^{_DIGEST}$")
_ALGORITHM_HEX_LEN = {"sha256": 64, "sha384": 96, "sha512": 128}


class ReferenceError(InvalidParameter):
    """A reference that docker would refuse; the message is docker's."""


def validate_digest(value: str) -> str:
    """Check an `algorithm:hex` digest like go-digest's Validate and return it."""
    algorithm, sep, encoded = value.partition(":")
    if not sep or not encoded:
        raise ReferenceError("invalid checksum digest format")
    expected = _ALGORITHM_HEX_LEN.get(algorithm)
    if expected is None:
        raise ReferenceError("unsupported digest algorithm")
    if len(encoded) != expected:
        raise ReferenceError("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise ReferenceError("invalid checksum digest format")
    return value


@dataclass(frozen=True)
class Reference:
    """A parsed reference: `domain/path[:tag][@digest]`."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository name (`docker.io/library/busybox`)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()

    @property
    def familiar_name(self) -> str:
        """The short name docker displays (`busybox`, `user/app`, `localhost:5000/a/b`)."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_PREFIX) and "/" not in path[len(OFFICIAL_PREFIX) :]:
            path = path[len(OFFICIAL_PREFIX) :]
        return path

    def familiar(self) -> str:
        """The display form with tag and digest (`busybox:latest`)."""
        return self.familiar_name + self._suffix()

    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> Reference:
        """docker's TagNameOnly: a bare name gets `:latest`."""
        return replace(self, tag=DEFAULT_TAG) if self.is_name_only() else self

    def name_only(self) -> Reference:
        return Reference(self.domain, self.path)


def parse(value: str) -> Reference:
    """Parse a reference without normalisation (docker's reference.Parse)."""
    match = _REFERENCE_RE.match(value)
    if match is None:
        if not value:
            raise ReferenceError("repository name must have at least one component")
        if _REFERENCE_RE.match(value.lower()) is not None:
            raise ReferenceError("repository name must be lowercase")
        raise ReferenceError("invalid reference format")
    name, tag, digest = match.groups()
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        validate_digest(digest)
    name_match = _ANCHORED_NAME_RE.match(name)
    assert name_match is not None  # the full grammar already matched
    domain, path = name_match.groups()
    return Reference(domain or "", path, tag, digest)


def split_docker_domain(name: str) -> tuple[str, str]:
    """Split a name into (domain, remainder) applying docker.io and library/ defaults."""
    first, sep, rest = name.partition("/")
    if not sep or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized(value: str) -> Reference:
    """docker's ParseNormalizedNamed: `busybox` → `docker.io/library/busybox` (no default tag)."""
    if _IDENTIFIER_RE.match(value):
        raise ReferenceError(f"invalid repository name ({value}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = split_docker_domain(value)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ReferenceError(f"invalid reference format: repository name ({remote}) must be lowercase")
    return parse(f"{domain}/{remainder}")


def parse_docker_ref(value: str) -> Reference:
    """Normalise like docker's ParseDockerRef: default tag, a digest wins over a tag."""
    ref = parse_normalized(value)
    if ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.with_default_tag()


def parse_any(value: str) -> Reference | str:
    """docker's ParseAnyReference: a bare 64-hex id or digest gives the digest string, else a name."""
    if _IDENTIFIER_RE.match(value):
        return f"sha256:{value}"
    if _DIGEST_RE.match(value):
        return validate_digest(value)
    return parse_normalized(value)


def familiar_string(value: str) -> str:
    """Convenience: the display form of any reference string (`docker.io/library/x:1` → `x:1`)."""
    return parse_normalized(value).familiar()


def validate_tag(tag: str) -> str:
    if not _TAG_RE.match(tag):
        raise ReferenceError("invalid tag format")
    return tag
