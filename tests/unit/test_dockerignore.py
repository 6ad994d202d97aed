""".dockerignore reading and matching (docker's patternmatcher semantics)."""

from __future__ import annotations

import pytest

from dockyard.build.dockerignore import DockerignoreError, IgnoreMatcher, clean_path, read_patterns


@pytest.mark.parametrize(
    ("text", "patterns"),
    [
        ("# comment\n\n  *.pyc  \nbuild/\n", ["*.pyc", "build"]),
        ("/abs/path\n!/keep\n", ["abs/path", "!keep"]),
        ("a//b/./c/../d\n", ["a/b/d"]),
        ("! spaced\n!\n", ["!spaced", "!"]),
        ("  # not a comment (only column 0 is)\n", ["# not a comment (only column 0 is)"]),
        ("\ufeffnode_modules\r\n.git\r\n", ["node_modules", ".git"]),
        ("/\n./\n", ["/", "."]),
        ("**/*.log\n", ["**/*.log"]),
    ],
)
def test_read_patterns(text: str, patterns: list[str]) -> None:
    assert read_patterns(text) == patterns


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), ("a/../..", ".."), ("/../a", "/a"), ("//a//b/", "/a/b"), ("./a/./b", "a/b"), ("a/b/../../c", "c")],
)
def test_clean_path(path: str, cleaned: str) -> None:
    assert clean_path(path) == cleaned


CASES = [
    # (patterns, path, excluded)
    (["*.pyc"], "x.pyc", True),
    (["*.pyc"], "sub/x.pyc", False),  # * does not cross directories
    (["*/*.pyc"], "sub/x.pyc", True),
    (["**/*.pyc"], "sub/deeper/x.pyc", True),
    (["**/*.pyc"], "x.pyc", True),  # ** matches zero directories too
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/y/c", False),
    (["a/**"], "a/x/y", True),
    (["a/**"], "a", False),
    (["**"], "anything/at/all", True),
    (["**/foo"], "foo", True),
    (["**/foo"], "x/foo", True),
    (["**/foo"], "x/foo/inside", True),  # a matched directory excludes its contents
    (["**foo"], "barfoo", True),  # docker's suffix match quirk
    (["build"], "build/out/bin", True),
    (["build"], "sub/build", False),
    (["build"], "builder", False),
    (["doc?"], "docs", True),
    (["doc?"], "doc/x", False),
    (["[a-c].txt"], "b.txt", True),
    (["[a-c].txt"], "d.txt", False),
    (["[^a-c].txt"], "d.txt", True),
    (["\\*.txt"], "*.txt", True),
    (["\\*.txt"], "a.txt", False),
    (["a.b"], "axb", False),  # regexp metacharacters are literal
    (["a+(b)"], "a+(b)", True),
    (["*.md", "!README.md"], "README.md", False),
    (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README.md", "README*"], "README.md", True),  # later patterns win
    (["docs", "!docs/keep.md"], "docs/keep.md", False),
    (["docs", "!docs/keep.md"], "docs/other.md", True),
    (["docs", "!docs/keep"], "docs/keep/deep/file", False),  # an exception re-includes a directory's contents
    (["!x"], "x", False),
    (["/abs"], "abs", True),  # a leading "/" is dropped here too, not only by read_patterns
    (["  spaced  "], "spaced", True),
    ([".git"], ".git/HEAD", True),
    ([], "anything", False),
    (["*"], ".", False),  # the context root is never excluded
    (["*"], "a/b", True),
]


@pytest.mark.parametrize(("patterns", "path", "excluded"), CASES)
def test_excluded(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher(patterns).excluded(path) is excluded


def test_excluded_normalizes_paths() -> None:
    matcher = IgnoreMatcher(["a/b"])
    assert matcher.excluded("./a//b/c")
    assert matcher.excluded("/a/b")
    assert not matcher.excluded("a/c/../x")


def test_matcher_from_file() -> None:
    matcher = IgnoreMatcher(read_patterns("# ignore all logs but one\n*.log\n!/important.log\n/tmp/\n"))
    assert matcher.excluded("debug.log")
    assert not matcher.excluded("important.log")
    assert matcher.excluded("tmp/cache/x")
    assert not matcher.excluded("src/tmp")


@pytest.mark.parametrize(
    ("patterns", "directory", "walk"),
    [
        (["node_modules"], "node_modules", False),
        (["node_modules"], "src", True),  # not excluded
        (["docs", "!docs/keep.md"], "docs", True),
        (["docs", "!docs/keep.md"], "docs/sub", False),  # `docs/keep.md` is not below docs/sub
        (["docs", "!docs/sub/keep.md"], "docs/other", False),
        (["docs", "!docs/*/keep.md"], "docs/any", True),
        (["docs", "!**/keep.md"], "docs", True),
        (["docs", "!other"], "docs", False),
        (["a", "!a/b/c"], "a/b", True),
        (["a", "!a/b/c"], "a/x", False),
    ],
)
def test_needs_walk(patterns: list[str], directory: str, walk: bool) -> None:
    assert IgnoreMatcher(patterns).needs_walk(directory) is walk


def test_skipping_agrees_with_excluded() -> None:
    """Whenever needs_walk says skip, every path below is indeed excluded."""
    patterns = ["docs", "!docs/keep/**", "tmp/*", "!tmp/x*", "*.o"]
    matcher = IgnoreMatcher(patterns)
    tree = ["docs/a", "docs/keep/b", "docs/keep", "docs/z/y", "tmp/a/b", "tmp/xa/b", "src/m.o", "src/k"]
    for path in tree:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if not matcher.needs_walk(directory):
                assert matcher.excluded(path), (directory, path)


@pytest.mark.parametrize("pattern", ["[", "a[", "[]", "[a-]", "x\\", "[-a]", "!"])
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(DockerignoreError):
        IgnoreMatcher([pattern])


def test_bad_pattern_messages() -> None:
    with pytest.raises(DockerignoreError, match=r"^syntax error in pattern$"):
        IgnoreMatcher(["[a"])
    with pytest.raises(DockerignoreError, match=r'^illegal exclusion pattern: "!"$'):
        IgnoreMatcher(["!"])
