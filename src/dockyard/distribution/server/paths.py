"""Names, references and digests, and the on-disk layout of the registry root (the one place that spells it).

```
<root>/blobs/<alg>/<hex>                                 blob content, immutable, verified before rename
<root>/uploads/<uuid>/{data,info.json}                   uploads in progress (never served)
<root>/repositories/<name>/_layers/<alg>/<hex>           "this repository holds that blob" (empty file)
<root>/repositories/<name>/_manifests/revisions/<alg>/<hex>   manifests of this repository (empty file)
<root>/repositories/<name>/_manifests/tags/<tag>         the tag's manifest digest (text)
<root>/repositories/<name>/_referrers/<alg>/<subject-hex>/<hex>   descriptor JSON of a referrer
```
Every name component matches the distribution grammar (no leading `_` or `.`, no `..`), so a
repository path can never meet the `_layers`-style directories nor leave `repositories/`.
"""

from __future__ import annotations

import os
import re

from dockyard.distribution.server.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
MAX_NAME = 255


def check_name(name: str) -> str:
    """Refuse any repository name outside the grammar before it can become a path."""
    if len(name) > MAX_NAME or not NAME_RE.match(name):
        raise RegistryError("NAME_INVALID", {"name": name})
    return name


def is_digest(ref: str) -> bool:
    return _DIGEST_RE.match(ref) is not None


def check_digest(digest: str | None, code: str = "DIGEST_INVALID") -> str:
    if not digest or not _DIGEST_RE.match(digest):
        raise RegistryError(code, {"digest": digest}, message="invalid digest" if code == "DIGEST_INVALID" else None)
    return digest


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise RegistryError("TAG_INVALID", {"tag": tag}, message="invalid tag")
    return tag


def digest_path(digest: str) -> str:
    """`sha256:<hex>` -> `sha256/<hex>` (the digest must be checked already)."""
    alg, _, hexpart = digest.partition(":")
    return f"{alg}/{hexpart}"


class PathMapper:
    """Where everything lives under the root; all inputs must be validated by the checks above."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.blobs = os.path.join(self.root, "blobs")
        self.uploads = os.path.join(self.root, "uploads")
        self.repositories = os.path.join(self.root, "repositories")

    def blob(self, digest: str) -> str:
        return f"{self.blobs}/{digest_path(digest)}"

    def upload_dir(self, uuid: str) -> str:
        return f"{self.uploads}/{uuid}"

    def repo(self, name: str) -> str:
        return f"{self.repositories}/{name}"

    def layer_link(self, name: str, digest: str) -> str:
        return f"{self.repositories}/{name}/_layers/{digest_path(digest)}"

    def revisions(self, name: str) -> str:
        return f"{self.repositories}/{name}/_manifests/revisions"

    def revision_link(self, name: str, digest: str) -> str:
        return f"{self.repositories}/{name}/_manifests/revisions/{digest_path(digest)}"

    def tags(self, name: str) -> str:
        return f"{self.repositories}/{name}/_manifests/tags"

    def tag(self, name: str, tag: str) -> str:
        return f"{self.repositories}/{name}/_manifests/tags/{tag}"

    def referrers(self, name: str, subject: str) -> str:
        return f"{self.repositories}/{name}/_referrers/{digest_path(subject)}"
