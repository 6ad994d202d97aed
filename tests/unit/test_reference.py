"""Reference parsing and normalisation against docker's distribution/reference behaviour."""

from __future__ import annotations

import pytest

from dockyard.image import reference as r

HEX = "a" * 64
DIGEST = f"sha256:{HEX}"

NORMALISED = [
    # input, full normalised (docker ref with default tag), familiar
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox:tag", "docker.io/library/busybox:tag", "busybox:tag"),
    ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("user/app/sub:v1", "docker.io/user/app/sub:v1", "user/app/sub:v1"),
    ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/a/b:t", "localhost:5000/a/b:t", "localhost:5000/a/b:t"),
    ("example.com/app", "example.com/app:latest", "example.com/app:latest"),
    ("Example.COM/app", "Example.COM/app:latest", "Example.COM/app:latest"),
    ("127.0.0.1:5000/app:x", "127.0.0.1:5000/app:x", "127.0.0.1:5000/app:x"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("a_b/c__d/e-f--g.h", "docker.io/a_b/c__d/e-f--g.h:latest", "a_b/c__d/e-f--g.h:latest"),
    ("busybox:Tag_1.0-rc", "docker.io/library/busybox:Tag_1.0-rc", "busybox:Tag_1.0-rc"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"busybox:1@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}"),
    (f"localhost:5000/x@{DIGEST}", f"localhost:5000/x@{DIGEST}", f"localhost:5000/x@{DIGEST}"),
    ("sha256:abc", "docker.io/library/sha256:abc", "sha256:abc"),
    ("a" * 20, "docker.io/library/" + "a" * 20 + ":latest", "a" * 20 + ":latest"),
]


@pytest.mark.parametrize(("value", "full", "familiar"), NORMALISED)
def test_normalisation(value: str, full: str, familiar: str) -> None:
    ref = r.parse_docker_ref(value)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_domain_path_split_and_name_tag_digest_kept() -> None:
    ref = r.parse_normalized(f"localhost:5000/a/b:t@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "a/b", "t", DIGEST)
    assert ref.name == "localhost:5000/a/b"
    assert ref.familiar_name == "localhost:5000/a/b"
    assert r.parse_normalized("busybox").is_name_only()
    assert r.parse_normalized("busybox").tag is None
    assert r.split_docker_domain("Foo/bar") == ("Foo", "bar")
    assert r.split_docker_domain("foo/bar") == ("docker.io", "foo/bar")


INVALID = [
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App", "invalid reference format: repository name (user/App) must be lowercase"),
    ("", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("busy box", "invalid reference format"),
    ("-busybox", "invalid reference format"),
    ("busybox-", "invalid reference format"),
    ("busy..box", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("/busybox", "invalid reference format"),
    ("busybox/", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("localhost:port/app", "invalid reference format"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("a/" * 130 + "b", "repository name must not be more than 255 characters"),
    ("busybox:1:2", "invalid reference format"),
]


@pytest.mark.parametrize(("value", "message"), INVALID)
def test_invalid(value: str, message: str) -> None:
    with pytest.raises(r.ReferenceError) as exc:
        r.parse_docker_ref(value)
    assert str(exc.value) == message
    assert exc.value.status == 400


def test_plain_parse_messages() -> None:
    with pytest.raises(r.ReferenceError, match=r"^repository name must be lowercase$"):
        r.parse("docker.io/library/Busybox")
    with pytest.raises(r.ReferenceError, match=r"^repository name must have at least one component$"):
        r.parse("")


def test_parse_any_recognises_ids() -> None:
    assert r.parse_any(HEX) == DIGEST
    assert r.parse_any(DIGEST) == DIGEST
    parsed = r.parse_any("busybox")
    assert isinstance(parsed, r.Reference)
    assert parsed.name == "docker.io/library/busybox"


def test_familiar_string_and_tag_validation() -> None:
    assert r.familiar_string("docker.io/library/busybox:1") == "busybox:1"
    assert r.familiar_string("docker.io/user/app") == "user/app"
    assert r.validate_tag("v1.0_rc-2") == "v1.0_rc-2"
    with pytest.raises(r.ReferenceError, match="invalid tag format"):
        r.validate_tag(".bad")
