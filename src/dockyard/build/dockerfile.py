"""Dockerfile front end: the line parser (directives, continuations, flags, JSON forms), docker's shell-word
variable substitution and the per-instruction argument checks, in docker's own error wording.

Behaviour follows moby/buildkit's frontend/dockerfile parser, instructions and shell lexer (the classic
builder shares them). Heredocs (`RUN <<EOF`) are rejected: the classic builder never supported them.
"""

from __future__ import annotations

import json
import re

KEYWORDS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL", "MAINTAINER",
        "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    }
)  # fmt: skip
JSON_FORM_KEYWORDS = frozenset({"CMD", "ENTRYPOINT", "RUN", "SHELL", "COPY", "ADD", "VOLUME"})
_HEREDOC_KEYWORDS = frozenset({"RUN", "COPY", "ADD"})

# Flags each instruction accepts: "string" needs a value, "bool" may be bare, "multi" may repeat (values are
# joined with "\n" in Instruction.flags). Instructions missing here accept no flag at all, as in docker.
_STRING, _BOOL, _MULTI = "string", "bool", "multi"
_FLAG_SPECS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STRING},
    "COPY": {"from": _STRING, "chown": _STRING, "chmod": _STRING, "link": _BOOL, "parents": _BOOL, "exclude": _MULTI},
    "ADD": {
        "chown": _STRING, "chmod": _STRING, "link": _BOOL, "keep-git-dir": _BOOL, "checksum": _STRING,
        "exclude": _MULTI,
    },
    "RUN": {"mount": _MULTI, "network": _STRING, "security": _STRING},
    "HEALTHCHECK": {name: _STRING for name in ("interval", "timeout", "start-period", "start-interval", "retries")},
}  # fmt: skip

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = frozenset({"escape", "syntax", "check"})
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_HEREDOC_WORD = re.compile(r"""^\d*<<-?(["']?)[A-Za-z_][A-Za-z0-9_]*\1$""")
_NOT_STRING_ARRAY = "when using JSON array syntax, arrays must be comprised of strings only"


class DockerfileError(ValueError):
    """A Dockerfile that docker would refuse; the message is docker's ("dockerfile parse error on line N: ...")."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        self.reason = message
        super().__init__(f"dockerfile parse error on line {line}: {message}" if line else message)


class Instruction:
    """One Dockerfile instruction as written (arguments are not expanded: the builder does that per stage)."""

    __slots__ = ("args", "escape", "flags", "json_args", "keyword", "line", "original")

    def __init__(
        self,
        keyword: str,
        args: str,
        flags: dict[str, str] | None = None,
        json_args: list[str] | None = None,
        line: int = 0,
        original: str = "",
        escape: str = "\\",
    ) -> None:
        self.keyword = keyword
        self.args = args
        self.flags = dict(flags or {})
        self.json_args = json_args
        self.line = line
        self.original = original or " ".join(x for x in (keyword, args) if x)
        self.escape = escape  # the file's escape character, for expand()/split_words() on this instruction

    def __repr__(self) -> str:
        return f"Instruction({self.keyword!r}, {self.args!r}, flags={self.flags!r}, line={self.line})"


# --------------------------------------------------------------------------------------------- line parser


class _Directives:
    """Parser directives (`# escape=`` ` ``, `# syntax=...`): only valid before any other line."""

    def __init__(self) -> None:
        self.done = False
        self.seen: set[str] = set()
        self.escape = "\\"
        self.continuation = re.compile(r"\\[ \t]*$")

    def check(self, line: str, lineno: int) -> None:
        if self.done:
            return
        match = _DIRECTIVE.match(line)
        name = match.group(1).lower() if match else ""
        if name not in _KNOWN_DIRECTIVES:
            self.done = True
            return
        if name in self.seen:
            raise DockerfileError(f"only one {name} parser directive can be used", lineno)
        self.seen.add(name)
        if name == "escape":
            value = match.group(2) if match else ""
            if value not in ("`", "\\"):
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\", lineno)
            self.escape = value
            self.continuation = re.compile(re.escape(value) + r"[ \t]*$")

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without the trailing escape, whether the instruction ends on this line)."""
        trimmed, count = self.continuation.subn("", line)
        return trimmed, count == 0


def _split_lines(text: str) -> list[str]:
    """Lines as Go's bufio.ScanLines yields them: split on \\n, a trailing \\r dropped, BOM removed."""
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _join_for_log(parts: list[str]) -> str:
    """Continuation pieces joined for the build log: indentation around a join collapses to one space."""
    text = parts[0]
    for part in parts[1:]:
        if text[-1:].isspace() or part[:1].isspace():
            text = text.rstrip() + " " + part.lstrip()
        else:
            text += part
    return text.strip()


def parse(text: str, name: str = "Dockerfile") -> list[Instruction]:
    """Parse a Dockerfile into instructions (validated as docker does before building anything)."""
    if text == "":
        raise DockerfileError(f"the Dockerfile ({name}) cannot be empty")
    lines = _split_lines(text)
    directives = _Directives()
    instructions: list[Instruction] = []
    index = 0
    while index < len(lines):
        stripped = lines[index].lstrip()
        index += 1
        start = index
        directives.check(stripped, start)
        if stripped.startswith("#"):
            continue
        body, ended = directives.trim_continuation(stripped)
        if ended and body == "":
            continue
        parts = [body]
        while not ended and index < len(lines):
            raw = lines[index]
            index += 1
            directives.check(raw, index)
            if raw.lstrip().startswith("#") or raw.strip() == "":
                continue  # comments and blank lines inside a continuation are skipped, as docker does
            body, ended = directives.trim_continuation(raw)
            parts.append(body)
        instructions.append(_instruction("".join(parts), _join_for_log(parts), start, directives.escape))
    if not instructions:
        raise DockerfileError("file with no instructions")
    _split_stages(instructions)
    return instructions


def _instruction(line: str, original: str, lineno: int, escape: str) -> Instruction:
    words = _WHITESPACE.split(line.strip(), maxsplit=1)
    keyword = words[0].upper()
    if keyword not in KEYWORDS:
        raise DockerfileError(f"unknown instruction: {keyword}", lineno)
    flag_words, args = _extract_flags(words[1] if len(words) > 1 else "", escape)
    args = args.strip()
    try:
        flags = _parse_flags(keyword, flag_words)
        json_args = _json_form(args) if keyword in JSON_FORM_KEYWORDS else None
        instruction = Instruction(keyword, args, flags, json_args, lineno, original, escape)
        _validate(instruction)
    except DockerfileError as err:
        raise DockerfileError(err.reason, lineno) from None
    return instruction


def _extract_flags(rest: str, escape: str) -> tuple[list[str], str]:
    """Leading `--name[=value]` words (quotes and escapes removed, `--` ends them) and the remaining text."""
    flags: list[str] = []
    pos, size = 0, len(rest)
    while True:
        while pos < size and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return flags, rest[pos:]
        word, quote, quoted = [], "", False
        while pos < size and (quote or not rest[pos].isspace()):
            ch = rest[pos]
            pos += 1
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "'\"":
                quote, quoted = ch, True
            elif ch == escape:
                if pos < size:
                    word.append(rest[pos])
                    pos += 1
            else:
                word.append(ch)
        text = "".join(word)
        if text == "--":
            return flags, rest[pos:]
        if text or quoted:
            flags.append(text)


def _parse_flags(keyword: str, words: list[str]) -> dict[str, str]:
    """docker's BFlags: known names per instruction, values required/optional, no repeats except multi flags."""
    specs = _FLAG_SPECS.get(keyword, {})
    flags: dict[str, str] = {}
    for word in words:
        name, has_value, value = word[2:].partition("=")
        kind = specs.get(name)
        if kind is None:
            raise DockerfileError(f"unknown flag: {name}")
        if name in flags and kind != _MULTI:
            raise DockerfileError(f"duplicate flag specified: {name}")
        if kind == _STRING and not has_value:
            raise DockerfileError(f"missing a value on flag: {name}")
        if kind == _BOOL and has_value and value.lower() not in ("true", "false"):
            raise DockerfileError(f"expecting boolean value for flag {name}, not: {value}")
        flags[name] = f"{flags[name]}\n{value}" if name in flags else value
    return flags


def _reject_constant(name: str) -> None:
    raise ValueError(name)  # NaN / Infinity are not JSON for Go either


def _json_form(args: str) -> list[str] | None:
    """The exec (JSON array) form, None for the shell form; a JSON array of non-strings is an error in docker."""
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise DockerfileError(_NOT_STRING_ARRAY)
    return value


# ---------------------------------------------------------------------------------- per-instruction checks


def _validate(inst: Instruction) -> None:
    """The argument checks docker's instructions package makes at parse time."""
    keyword, args = inst.keyword, inst.args
    if keyword in _HEREDOC_KEYWORDS and inst.json_args is None:
        heredoc = next((word for word in args.split() if _HEREDOC_WORD.match(word)), None)
        if heredoc:
            raise DockerfileError(f"heredocs are not supported by this builder ({keyword} ... {heredoc})")
    if keyword == "FROM":
        from_parts(inst)
    elif keyword in ("COPY", "ADD"):
        if len(inst.json_args if inst.json_args is not None else args.split()) < 2:
            raise DockerfileError(
                f"{keyword} requires at least two arguments, but only one was provided. "
                "Destination could not be determined"
            )
    elif keyword in ("ENV", "LABEL"):
        key_values(args, keyword, inst.escape)
    elif keyword == "ARG":
        arg_pairs(args, inst.escape)
    elif keyword in ("MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"):
        if not args:
            raise DockerfileError(f"{keyword} requires exactly one argument")
    elif keyword in ("EXPOSE", "VOLUME", "ONBUILD", "HEALTHCHECK") and not args:
        raise DockerfileError(f"{keyword} requires at least one argument")
    elif keyword == "VOLUME" and inst.json_args is not None and any(not v.strip() for v in inst.json_args):
        raise DockerfileError("VOLUME specified can not be an empty string")
    elif keyword == "ONBUILD":
        trigger = args.split()[0].upper()
        if trigger == "ONBUILD":
            raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    elif keyword == "SHELL":
        if inst.json_args is None:
            raise DockerfileError("SHELL requires the arguments to be in JSON form")
        if not inst.json_args:
            raise DockerfileError("SHELL requires at least one argument")
    elif keyword == "HEALTHCHECK":
        _validate_healthcheck(inst)


def _validate_healthcheck(inst: Instruction) -> None:
    """Reuse the `--change` HEALTHCHECK reader so both paths agree on flags and forms."""
    from dockyard.build.changes import parse_healthcheck
    from dockyard.errors import InvalidParameter

    text = " ".join([*(f"--{name}={value}" for name, value in inst.flags.items()), inst.args])
    try:
        test = parse_healthcheck(text)["Test"]
    except InvalidParameter as err:
        raise DockerfileError(str(err)) from None
    if test in (["CMD"], ["CMD-SHELL", ""]):
        raise DockerfileError("Missing command after HEALTHCHECK CMD")


def from_parts(instruction: Instruction) -> tuple[str, str | None]:
    """`FROM image [AS name]` -> (image, lower-cased stage name or None)."""
    words = instruction.args.split()
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(
                f'invalid name for build stage: "{words[2]}", name can\'t start with a number or contain symbols',
                instruction.line or None,
            )
        return words[0], name
    if len(words) != 1:
        raise DockerfileError("FROM requires either one or three arguments", instruction.line or None)
    return words[0], None


def _split_stages(instructions: list[Instruction]) -> tuple[list[Instruction], list[list[Instruction]]]:
    global_args: list[Instruction] = []
    stage_list: list[list[Instruction]] = []
    for inst in instructions:
        if inst.keyword == "FROM":
            stage_list.append([inst])
        elif stage_list:
            stage_list[-1].append(inst)
        elif inst.keyword == "ARG":
            global_args.append(inst)
        else:
            raise DockerfileError("no build stage in current context", inst.line or None)
    return global_args, stage_list


def stages(instructions: list[Instruction]) -> tuple[list[Instruction], list[list[Instruction]]]:
    """(global ARGs before the first FROM, one list per stage starting with its FROM)."""
    return _split_stages(instructions)


# ------------------------------------------------------------------------------------ shell word lexer


class _Words:
    """Word accumulator of docker's lexer: unquoted whitespace splits, quoted text never does."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if not ch.isspace():
            self.add_raw(ch)
        elif self.in_word and self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
        return self.words


class _Lexer:
    """docker's shell lexer. `env` None: no substitution ($ is literal). `raw`: quotes and escapes are kept in
    the result (only substitution happens), except that an escaped `$` becomes a plain `$`."""

    def __init__(self, text: str, escape: str, env: dict[str, str] | None, raw: bool) -> None:
        self.text, self.pos, self.escape, self.env, self.raw = text, 0, escape, env, raw

    def run(self) -> tuple[str, list[str]]:
        result, words, _ = self._process(None)
        return result, words

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1
        return ch

    def _process(self, stop: str | None) -> tuple[str, list[str], bool]:
        out: list[str] = []
        words = _Words()
        while self.pos < len(self.text):
            ch = self._peek()
            if ch == stop:
                self.pos += 1
                return "".join(out), words.finish(), True
            if ch == "$" and self.env is not None:
                value = self._dollar()
                out.append(value)
                words.add_string(value)
            elif ch in "'\"":
                value = self._single_quoted() if ch == "'" else self._double_quoted()
                out.append(value)
                words.add_raw(value)
            elif self._next() == self.escape:
                if self.pos >= len(self.text):
                    if self.raw:
                        out.append(ch)
                    break
                escaped = self._next()
                if self.raw and escaped != "$":
                    out.append(ch)
                out.append(escaped)
                words.add_raw(escaped)
            else:
                out.append(ch)
                words.add_char(ch)
        return "".join(out), words.finish(), False

    def _single_quoted(self) -> str:
        self.pos += 1
        end = self.text.find("'", self.pos)
        if end < 0:
            raise DockerfileError("unexpected end of statement while looking for matching single-quote")
        body = self.text[self.pos : end]
        self.pos = end + 1
        return f"'{body}'" if self.raw else body

    def _double_quoted(self) -> str:
        self.pos += 1
        out = ['"'] if self.raw else []
        while True:
            if self.pos >= len(self.text):
                raise DockerfileError("unexpected end of statement while looking for matching double-quote")
            ch = self._peek()
            if ch == '"':
                self.pos += 1
                if self.raw:
                    out.append(ch)
                return "".join(out)
            if ch == "$" and self.env is not None:
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape and self._peek() in ('"', "$", self.escape) and self._peek():
                escaped = self._next()
                if self.raw and escaped != "$":
                    out.append(ch)
                out.append(escaped)
                continue
            if ch == self.escape and not self._peek():
                continue  # an escape at the very end is dropped (and the quote is then unterminated)
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        ch = self._peek()
        if ch.isdigit():
            while self._peek().isdigit():
                self.pos += 1
            return self.text[start : self.pos]
        if ch and ch in "@*#?-$!":
            self.pos += 1
            return ch
        while (c := self._peek()) and (c.isalnum() or c == "_"):
            self.pos += 1
        return self.text[start : self.pos]

    def _lookup(self, name: str) -> str | None:
        assert self.env is not None
        return self.env.get(name)

    def _dollar(self) -> str:
        self.pos += 1
        if self._peek() != "{":
            name = self._name()
            return (self._lookup(name) or "") if name else "$"
        self.pos += 1
        if not self._peek():
            raise DockerfileError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise DockerfileError("syntax error: bad substitution")
        name = self._name()
        modifier = self._next()
        if modifier == "}":
            return self._lookup(name) or ""
        null_is_unset = modifier == ":"
        if null_is_unset:
            modifier += self._next()
        op = modifier[-1:] if modifier != ":" else ""
        if not op:
            raise DockerfileError("syntax error: missing '}'")
        if op not in "+-?#%" or (null_is_unset and op in "#%"):
            raise DockerfileError(f"unsupported modifier ({modifier}) in substitution")
        if op in "#%" and self._peek() == op:
            self.pos += 1
            op += op
        word, _, found = self._process("}")
        if not found:
            raise DockerfileError("syntax error: missing '}'")
        value = self._lookup(name)
        unset = value is None or (null_is_unset and value == "")
        if op == "-":
            return word if unset else value or ""
        if op == "+":
            return "" if unset else word
        if op == "?":
            if value is None:
                raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
            if unset:
                raise DockerfileError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        return _trim_pattern(value or "", word, op)


def _trim_pattern(value: str, pattern: str, op: str) -> str:
    """${v#p} ${v##p} ${v%p} ${v%%p}: remove the shortest/longest matching prefix or suffix (shell glob)."""
    regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)
    cuts = range(len(value) + 1)
    if op.startswith("#"):
        for cut in reversed(cuts) if op == "##" else cuts:
            if regex.fullmatch(value[:cut]):
                return value[cut:]
    else:
        for cut in cuts if op == "%%" else reversed(cuts):
            if regex.fullmatch(value[cut:]):
                return value[:cut]
    return value


def expand(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """Substitute variables as docker does, keeping quotes and escapes for a later split_words(); `\\$` -> `$`.

    Prefer split_words/key_values/arg_pairs/expand_word with env=: like docker they substitute in the same
    pass as they split, so values holding spaces or quotes stay intact."""
    return _Lexer(text, escape, env, raw=True).run()[0]


def expand_word(text: str, env: dict[str, str] | None, escape: str = "\\") -> str:
    """docker's ProcessWord (WORKDIR, USER, FROM, flag values, JSON elements): substitute, remove quotes and
    escapes, no word splitting."""
    return _Lexer(text, escape, env, raw=False).run()[0]


def split_words(text: str, escape: str = "\\", env: dict[str, str] | None = None) -> list[str]:
    """Shell-like words: whitespace separates, quotes group and are removed, escapes honoured. With env,
    variables are substituted in the same pass (docker's ProcessWords: unquoted values split on spaces)."""
    return _Lexer(text, escape, env, raw=False).run()[1]


def _raw_words(text: str, escape: str) -> list[str]:
    """The parser's first split (docker's parseWords): whitespace-separated words, quotes and escapes kept."""
    words: list[str] = []
    word, quote, in_word, blank_ok = [], "", False, False
    pos = 0
    while pos < len(text):
        ch = text[pos]
        pos += 1
        if not in_word and not quote:
            if ch.isspace():
                continue
            in_word = True
        if not quote and ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, in_word, blank_ok = [], False, False
            continue
        if quote and ch == quote:
            quote = ""
        elif not quote and ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape and quote != "'":  # the escape and the character it escapes are both kept
            if pos >= len(text):
                continue
            word.append(ch)
            ch = text[pos]
            pos += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def key_values(args: str, keyword: str, escape: str = "\\", env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """ENV/LABEL pairs: `K=V K2="v 2"`, or the legacy `K some value`. Quotes/escapes are removed per word;
    with env, variables are substituted per key and value (as docker does, after the split)."""
    words = _raw_words(args, escape)
    if not words:
        raise DockerfileError(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = _WHITESPACE.split(args.strip(), maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{keyword} must have two arguments")
        return [(expand_word(parts[0], env, escape), expand_word(parts[1], env, escape))]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise DockerfileError(f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value')
        if not key:
            raise DockerfileError(f"{keyword} names can not be blank")
        pairs.append((expand_word(key, env, escape), expand_word(value, env, escape)))
    return pairs


def arg_pairs(args: str, escape: str = "\\", env: dict[str, str] | None = None) -> list[tuple[str, str | None]]:
    """ARG `name[=default] ...` -> [(name, default or None)], substituted per word when env is given."""
    words = _raw_words(args, escape)
    if not words:
        raise DockerfileError("ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        key, sep, value = word.partition("=")
        if sep and not key:
            raise DockerfileError("ARG names can not be blank")
        pairs.append((expand_word(key, env, escape), expand_word(value, env, escape) if sep else None))
    return pairs
