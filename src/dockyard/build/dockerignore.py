""".dockerignore reading and matching with docker's semantics (moby/patternmatcher + ignorefile).

Patterns are Go filepath.Match globs (`*`, `?`, `[...]`, `\\` escapes) plus `**` for any number of
directories; later patterns win and `!pattern` re-includes. A pattern matching a directory excludes
everything below it. As in docker, the Dockerfile and .dockerignore themselves are always sent to the
builder even when a pattern excludes them: the caller (the builder / context walker) handles that, not
this module.
"""

from __future__ import annotations

import re

_REGEX_SPECIAL = set(".+()|{}$")


class DockerignoreError(ValueError):
    """A pattern docker would refuse (message in Go's words)."""


def clean_path(path: str) -> str:
    """Go's path.Clean: collapse `//`, `.` and `..` lexically; "" -> "."."""
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = ("/" if rooted else "") + "/".join(parts)
    return cleaned or "."


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file: `#` comment lines and blanks skipped, each pattern trimmed and
    cleaned, a leading "/" dropped (patterns are relative to the context), "!" exceptions kept."""
    patterns = []
    for number, line in enumerate(text.split("\n")):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _check_glob(pattern: str) -> None:
    """Reject what Go's filepath.Match calls a malformed pattern (ErrBadPattern)."""
    pos, size = 0, len(pattern)

    def class_char() -> None:
        nonlocal pos
        if pos >= size or pattern[pos] in "-]":
            raise DockerignoreError("syntax error in pattern")
        if pattern[pos] == "\\":
            pos += 1
            if pos >= size:
                raise DockerignoreError("syntax error in pattern")
        pos += 1

    while pos < size:
        ch = pattern[pos]
        pos += 1
        if ch == "\\":
            if pos >= size:
                raise DockerignoreError("syntax error in pattern")
            pos += 1
        elif ch == "[":
            if pos < size and pattern[pos] == "^":
                pos += 1
            while True:
                class_char()
                if pos < size and pattern[pos] == "-":
                    pos += 1
                    class_char()
                if pos < size and pattern[pos] == "]":
                    pos += 1
                    break
                if pos >= size:
                    raise DockerignoreError("syntax error in pattern")


class _Pattern:
    """One cleaned pattern compiled the way patternmatcher does (exact / prefix / suffix / regexp)."""

    __slots__ = ("exclusion", "kind", "literal", "parts", "regex", "text")

    def __init__(self, text: str, exclusion: bool) -> None:
        _check_glob(text)
        self.text = text
        self.exclusion = exclusion
        self.parts = text.split("/")
        self.kind, self.literal, self.regex = _compile(text)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.literal)
        if self.kind == "suffix":
            return path.endswith(self.literal) or (self.literal.startswith("/") and path == self.literal[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(pattern: str) -> tuple[str, str, re.Pattern[str] | None]:
    """(kind, literal for prefix/suffix kinds, regex for the regexp kind)."""
    regex = ["^"]
    kind = "exact"
    pos, size = 0, len(pattern)
    while pos < size:
        first = pos == 0
        ch = pattern[pos]
        pos += 1
        if ch == "*" and pattern.startswith("*", pos):
            pos += 1
            if pattern.startswith("/", pos):
                pos += 1  # "**/" is "**"
            if pos >= size:
                if kind == "exact":
                    kind = "prefix"
                else:
                    regex.append(".*")
                    kind = "regexp"
            else:
                regex.append("(.*/)?")
                kind = "regexp"
            if first:
                kind = "suffix"
        elif ch == "*":
            regex.append("[^/]*")
            kind = "regexp"
        elif ch == "?":
            regex.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_SPECIAL:
            regex.append("\\" + ch)
        elif ch == "\\":
            if pos < size:
                regex.append(re.escape(pattern[pos]))
                pos += 1
                kind = "regexp"
            else:
                regex.append("\\\\")
        elif ch in "[]":
            regex.append(ch)
            kind = "regexp"
        else:
            regex.append(ch)
    if kind == "prefix":
        return kind, pattern[:-2], None
    if kind == "suffix":
        return kind, pattern[2:], None
    if kind == "exact":
        return kind, pattern, None
    try:
        return kind, "", re.compile("".join(regex) + "$", re.S)
    except re.error:
        raise DockerignoreError("syntax error in pattern") from None


class IgnoreMatcher:
    """Decides which context paths a .dockerignore excludes (docker's MatchesOrParentMatches)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = clean_path(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise DockerignoreError('illegal exclusion pattern: "!"')
                text = text[1:]
            if len(text) > 1:
                text = text.lstrip("/")  # patterns are relative to the context (read_patterns already did this)
            self.patterns.append(_Pattern(text, exclusion))
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    def excluded(self, path: str) -> bool:
        """Whether `path` (relative to the context root, "/"-separated) is excluded; a pattern matching any
        parent directory counts as matching the path. The context root itself is never excluded."""
        path = clean_path(path).lstrip("/") or "."
        if path == ".":
            return False
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only an exception can undo a match, only an inclusion can make one
            if pattern.match(path) or any(pattern.match(parent) for parent in parents):
                matched = not pattern.exclusion
        return matched

    def needs_walk(self, directory: str) -> bool:
        """False when `directory` is excluded and no "!" exception can re-include anything below it, so a
        context walker may skip the whole tree; True (walk, checking each entry) otherwise."""
        if not self.excluded(directory):
            return True
        dirs = (clean_path(directory).lstrip("/") or ".").split("/")
        return any(p.exclusion and _may_match_below(p.parts, dirs) for p in self.patterns)


def _may_match_below(parts: list[str], dirs: list[str]) -> bool:
    """Whether a pattern (split in components) could match something inside the directory `dirs`
    (conservative: "**" anywhere in the remaining prefix means yes)."""
    for index, directory in enumerate(dirs):
        if index >= len(parts):
            return True  # matched an ancestor: let the per-entry checks decide
        part = parts[index]
        if "**" in part:
            return True
        try:
            if not _Pattern(part, False).match(directory):
                return False
        except DockerignoreError:
            return True
    return True
