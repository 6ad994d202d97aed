"""Dockerfile parser, shell-word substitution and argument checks against docker's behaviour and wording."""

from __future__ import annotations

import pytest

from dockyard.build.dockerfile import (
    DockerfileError,
    Instruction,
    arg_pairs,
    expand,
    expand_word,
    from_parts,
    key_values,
    parse,
    split_words,
    stages,
)


def only(text: str) -> Instruction:
    """The single instruction after `FROM x` (or the only one if the text is a FROM)."""
    parsed = parse(text if text.upper().startswith(("FROM", "ARG")) else f"FROM x\n{text}")
    return parsed[-1]


# ------------------------------------------------------------------------------------------------ parse


def test_basic_fields_and_lines() -> None:
    result = parse('# comment\n\nFROM busybox\n  run   echo hi  \nCMD ["sh"]\n')
    assert [(i.keyword, i.args, i.line) for i in result] == [
        ("FROM", "busybox", 3),
        ("RUN", "echo hi", 4),
        ("CMD", '["sh"]', 5),
    ]
    assert result[1].original == "run   echo hi"
    assert result[1].json_args is None and result[2].json_args == ["sh"]
    assert result[0].flags == {} and result[0].escape == "\\"


def test_continuations_skip_comments_and_blank_lines() -> None:
    text = "FROM x\nRUN echo a \\\n    # a comment\n\n   \n    && echo b \\  \n  c\nUSER me\n"
    run, user = parse(text)[1:]
    assert run.args == "echo a     && echo b   c"  # docker joins pieces as written (no left trim)
    assert run.original == "RUN echo a && echo b c"  # the log line collapses indentation at joins
    assert run.line == 2 and user.line == 8


def test_continuation_inside_word_joins_without_space() -> None:
    run = only('RUN echo "a\\\nb"')
    assert run.args == 'echo "ab"' and run.original == 'RUN echo "ab"'


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo", "dir c:\\   && echo"),
        ("#escape = `\nFROM x\nRUN a`\nb", "ab"),
        ("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN a `\nb", "a b"),
        ("# ESCAPE=\\\nFROM x\nRUN a \\\nb", "a b"),
        # not at the very top: an ordinary comment, so \ stays the escape and ` is literal
        ("\n# escape=`\nFROM x\nRUN a `\nRUN b", "b"),
        ("# hello\n# escape=`\nFROM x\nRUN a `\nRUN b", "b"),
        ("FROM x\n# escape=`\nRUN a `\nRUN b", "b"),
    ],
)
def test_escape_directive(text: str, args: str) -> None:
    assert parse(text)[-1].args == args


def test_escape_directive_recorded_on_instructions() -> None:
    assert {i.escape for i in parse("# escape=`\nFROM x\nRUN y")} == {"`"}


def test_crlf_and_bom() -> None:
    result = parse("\ufeffFROM x\r\nRUN a \\\r\n b\r\n")
    assert [i.args for i in result] == ["x", "a  b"]


@pytest.mark.parametrize(
    ("line", "flags", "args"),
    [
        ("FROM --platform=linux/arm64 img AS b", {"platform": "linux/arm64"}, "img AS b"),
        ("COPY --from=build --chown=a:b src /dst", {"from": "build", "chown": "a:b"}, "src /dst"),
        ("COPY --link --chmod=755 a b", {"link": "", "chmod": "755"}, "a b"),
        ("COPY --link=false a b", {"link": "false"}, "a b"),
        ('ADD --chown="a b" x y', {"chown": "a b"}, "x y"),
        ("ADD --checksum=sha256:ab --keep-git-dir x y", {"checksum": "sha256:ab", "keep-git-dir": ""}, "x y"),
        ("RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t make", {
            "mount": "type=cache,target=/c\ntype=tmpfs,target=/t"}, "make"),
        ("RUN --network=none -- --not-a-flag", {"network": "none"}, "--not-a-flag"),
        ("HEALTHCHECK --interval=5s --retries=3 CMD true", {"interval": "5s", "retries": "3"}, "CMD true"),
        ("RUN echo --x", {}, "echo --x"),
    ],
)  # fmt: skip
def test_flags(line: str, flags: dict[str, str], args: str) -> None:
    inst = only(line)
    assert (inst.flags, inst.args) == (flags, args)
    assert inst.original == line


@pytest.mark.parametrize(
    ("line", "json_args"),
    [
        ('CMD ["a", "b c"]', ["a", "b c"]),
        ("ENTRYPOINT []", []),
        ('RUN ["sh","-c","x"]', ["sh", "-c", "x"]),
        ('SHELL ["/bin/bash", "-c"]', ["/bin/bash", "-c"]),
        ('COPY ["a b", "/d/"]', ["a b", "/d/"]),
        ('ADD ["x", "y"]', ["x", "y"]),
        ('VOLUME ["/data"]', ["/data"]),
        ("CMD [not json]", None),  # invalid JSON: shell form, as docker does
        ("CMD ['single']", None),
        ('CMD ["a"] trailing', None),
        ("CMD echo [x]", None),
        ('USER ["a"]', None),  # USER has no exec form
    ],
)
def test_json_or_shell_form(line: str, json_args: list[str] | None) -> None:
    assert only(line).json_args == json_args


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nFOO bar", "dockerfile parse error on line 2: unknown instruction: FOO"),
        ("FROM x\nrunn x", "dockerfile parse error on line 2: unknown instruction: RUNN"),
        ("RUN x", "dockerfile parse error on line 1: no build stage in current context"),
        ("ARG a\nENV b=c\nFROM x", "dockerfile parse error on line 2: no build stage in current context"),
        ("# only a comment\n\n", "file with no instructions"),
        ("FROM", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("FROM a AS", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("FROM a b c", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("FROM a AS 1st", 'dockerfile parse error on line 1: invalid name for build stage: "1st", name can\'t start '
         "with a number or contain symbols"),
        ("FROM x\nENV A", "dockerfile parse error on line 2: ENV must have two arguments"),
        ("FROM x\nENV", "dockerfile parse error on line 2: ENV requires at least one argument"),
        ("FROM x\nLABEL a", "dockerfile parse error on line 2: LABEL must have two arguments"),
        ("FROM x\nENV a=b c", 'dockerfile parse error on line 2: Syntax error - can\'t find = in "c". Must be of the '
         "form: name=value"),
        ("FROM x\nENV =b", "dockerfile parse error on line 2: ENV names can not be blank"),
        ("FROM x\nARG", "dockerfile parse error on line 2: ARG requires at least one argument"),
        ("FROM x\nARG =v", "dockerfile parse error on line 2: ARG names can not be blank"),
        ("FROM x\nCOPY a", "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was "
         "provided. Destination could not be determined"),
        ('FROM x\nADD ["a"]', "dockerfile parse error on line 2: ADD requires at least two arguments, but only one "
         "was provided. Destination could not be determined"),
        ("FROM x\nWORKDIR", "dockerfile parse error on line 2: WORKDIR requires exactly one argument"),
        ("FROM x\nUSER", "dockerfile parse error on line 2: USER requires exactly one argument"),
        ("FROM x\nEXPOSE", "dockerfile parse error on line 2: EXPOSE requires at least one argument"),
        ("FROM x\nVOLUME", "dockerfile parse error on line 2: VOLUME requires at least one argument"),
        ('FROM x\nVOLUME [""]', "dockerfile parse error on line 2: VOLUME specified can not be an empty string"),
        ("FROM x\nSHELL sh -c", "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"),
        ("FROM x\nSHELL []", "dockerfile parse error on line 2: SHELL requires at least one argument"),
        ('FROM x\nCMD ["a", 1]', "dockerfile parse error on line 2: when using JSON array syntax, arrays must be "
         "comprised of strings only"),
        ("FROM x\nONBUILD", "dockerfile parse error on line 2: ONBUILD requires at least one argument"),
        ("FROM x\nONBUILD ONBUILD RUN x", "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` "
         "isn't allowed"),
        ("FROM x\nONBUILD from y", "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM x\nHEALTHCHECK", "dockerfile parse error on line 2: HEALTHCHECK requires at least one argument"),
        ("FROM x\nHEALTHCHECK CMD", "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD"),
        ("FROM x\nHEALTHCHECK NONE x", "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM x\nHEALTHCHECK --interval=xs CMD t", 'dockerfile parse error on line 2: time: invalid duration "xs"'),
        ("FROM x\nHEALTHCHECK BOGUS t", 'dockerfile parse error on line 2: Unknown type "BOGUS" in HEALTHCHECK (try '
         "CMD)"),
        ("FROM x\nRUN --bogus=1 x", "dockerfile parse error on line 2: unknown flag: bogus"),
        ("FROM x\nENV --x=1 a=b", "dockerfile parse error on line 2: unknown flag: x"),
        ("FROM x\nCOPY --chown a b", "dockerfile parse error on line 2: missing a value on flag: chown"),
        ("FROM x\nCOPY --from=a --from=b c d", "dockerfile parse error on line 2: duplicate flag specified: from"),
        ("FROM x\nCOPY --link=maybe a b", "dockerfile parse error on line 2: expecting boolean value for flag link, "
         "not: maybe"),
        ("# escape=x\nFROM x", "dockerfile parse error on line 1: invalid escape token 'x' does not match ` or \\"),
        ("# escape=`\n# escape=`\nFROM x", "dockerfile parse error on line 2: only one escape parser directive can "
         "be used"),
    ],
)  # fmt: skip
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        parse(text)
    assert str(err.value) == message


def test_empty_file_error_names_the_file() -> None:
    with pytest.raises(DockerfileError, match=r"^the Dockerfile \(Dockerfile\) cannot be empty$"):
        parse("")
    with pytest.raises(DockerfileError, match=r"the Dockerfile \(build/Dockerfile.dev\) cannot be empty"):
        parse("", name="build/Dockerfile.dev")


def test_error_carries_line_and_reason() -> None:
    with pytest.raises(DockerfileError) as err:
        parse("FROM x\n\nRUN a \\\n  b\nBAD")
    assert (err.value.line, err.value.reason) == (5, "unknown instruction: BAD")
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "line", ["RUN cat <<EOF", "RUN <<-EOT bash", "COPY <<'EOF' /x", 'ADD <<"X" /y', "RUN python3 3<<EOF"]
)
def test_heredocs_rejected(line: str) -> None:
    with pytest.raises(DockerfileError, match="heredocs are not supported"):
        parse(f"FROM x\n{line}\nhello\nEOF")


@pytest.mark.parametrize("line", ["RUN cat <<<word", "RUN echo a<<b", 'RUN ["cat", "<<EOF"]', "CMD cat <<EOF"])
def test_not_heredocs(line: str) -> None:
    assert only(line).args


def test_onbuild_keeps_trigger_text() -> None:
    inst = only("ONBUILD COPY --from=a x y")
    assert (inst.keyword, inst.args, inst.flags) == ("ONBUILD", "COPY --from=a x y", {})


# ----------------------------------------------------------------------------------------- stages / FROM


def test_stages_split() -> None:
    result = parse("ARG A=1\nARG B\nFROM a AS one\nRUN x\nFROM one\nCOPY --from=one / /\nCMD y\n")
    global_args, stage_list = stages(result)
    assert [i.args for i in global_args] == ["A=1", "B"]
    assert [[i.keyword for i in stage] for stage in stage_list] == [["FROM", "RUN"], ["FROM", "COPY", "CMD"]]


def test_stages_rejects_instruction_before_from() -> None:
    with pytest.raises(DockerfileError, match="line 7: no build stage in current context"):
        stages([Instruction("ARG", "a", line=1), Instruction("RUN", "x", line=7)])


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        ("busybox", ("busybox", None)),
        ("busybox:1.36 AS Build-1.x_y", ("busybox:1.36", "build-1.x_y")),
        ("img as b", ("img", "b")),
        ("${BASE}  aS  stage", ("${BASE}", "stage")),
    ],
)
def test_from_parts(args: str, parts: tuple[str, str | None]) -> None:
    assert from_parts(Instruction("FROM", args)) == parts


@pytest.mark.parametrize("args", ["a AS", "a b c", "", "a AS b c", "a AS -x"])
def test_from_parts_errors(args: str) -> None:
    with pytest.raises(DockerfileError):
        from_parts(Instruction("FROM", args))


# ---------------------------------------------------------------------------------------------- expand

ENV = {"A": "a", "EMPTY": "", "SP": "x y", "Q": "it's", "PATH": "/usr/bin"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("${A}b $Ab", "ab "),
        ("pre-$A-post", "pre-a-post"),
        ("$UNSET|${UNSET}", "|"),
        ("${A:-d} ${EMPTY:-d} ${UNSET:-d}", "a d d"),
        ("${A-d} ${EMPTY-d} ${UNSET-d}", "a  d"),
        ("${A:+alt} ${EMPTY:+alt} ${UNSET:+alt}", "alt  "),
        ("${A+alt} ${EMPTY+alt} ${UNSET+alt}", "alt alt "),
        ("${UNSET:-x y}", "x y"),
        ("${UNSET:-$A}", "a"),
        ("${UNSET:-${EMPTY:-deep}}", "deep"),
        ("${UNSET:-\\}}", "\\}"),
        ("\\$A", "$A"),
        ("\\${A}", "${A}"),
        ("\\\\$A", "\\\\a"),
        ("'$A' \"$A\"", "'$A' \"a\""),
        ("\"'$A'\"", "\"'a'\""),
        ("'\"$A\"'", "'\"$A\"'"),
        ('"\\$A"', '"$A"'),
        ('"a\\"$A"', '"a\\"a"'),
        ("a\\ b", "a\\ b"),
        ("$", "$"),
        ("$ a", "$ a"),
        ("$/x", "$/x"),
        ("$1 $@", " "),
        ("$PATH:/bin", "/usr/bin:/bin"),
        ("${PATH#/usr}", "/bin"),
        ("${PATH##*/}", "bin"),
        ("${PATH%/*}", "/usr"),
        ("${PATH%%b*}", "/usr/"),
        ("trailing\\", "trailing\\"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_expand_backtick_escape() -> None:
    assert expand("`$A \\$A", ENV, escape="`") == "$A \\a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET:?must set it}", "UNSET: must set it"),
        ("${A", "syntax error: missing '}'"),
        ("${A:-x", "syntax error: missing '}'"),
        ("${", "syntax error: missing '}'"),
        ("${}", "syntax error: bad substitution"),
        ("${:-x}", "syntax error: bad substitution"),
        ("${A B}", "unsupported modifier ( ) in substitution"),
        ("${A:=x}", "unsupported modifier (:=) in substitution"),
        ("'open", "unexpected end of statement while looking for matching single-quote"),
        ('"open', "unexpected end of statement while looking for matching double-quote"),
    ],
)
def test_expand_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        expand(text, ENV)
    assert str(err.value) == message


def test_expand_question_mark_passes_when_set() -> None:
    assert expand("${A:?x}${EMPTY?x}", ENV) == "a"


# ------------------------------------------------------------------------------------------ split_words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a b\tc", ["a", "b", "c"]),
        ("  a   b  ", ["a", "b"]),
        ('"a b" c', ["a b", "c"]),
        ("'a b'c d", ["a bc", "d"]),
        ("a\\ b c", ["a b", "c"]),
        ('"a \\"q\\" b"', ['a "q" b']),
        ('"x\\y"', ["x\\y"]),
        ("\\$A $A", ["$A", "$A"]),
        ('a "" b', ["a", "b"]),
        ("k=\"v 1\" k2='v 2'", ["k=v 1", "k2=v 2"]),
        ("", []),
    ],
)
def test_split_words(text: str, words: list[str]) -> None:
    assert split_words(text) == words


def test_split_words_single_quotes_cannot_escape() -> None:
    with pytest.raises(DockerfileError, match="matching single-quote"):
        split_words("'a \\' b'")


def test_split_words_with_env_substitutes_in_one_pass() -> None:
    assert split_words("$SP \"$SP\" $Q '$A' ${UNSET:-d e}", env=ENV) == ["x", "y", "x y", "it's", "$A", "d", "e"]


def test_split_words_after_expand() -> None:
    assert split_words(expand("a=\\$A b=\"$SP\" c='$A' d=\\\\$A", ENV)) == ["a=$A", "b=x y", "c=$A", "d=\\a"]


def test_split_words_backtick_escape() -> None:
    assert split_words("a` b c\\d", escape="`") == ["a b", "c\\d"]


def test_expand_word_removes_quotes_without_splitting() -> None:
    assert expand_word('"/my dir"/$SP \\$A', ENV) == "/my dir/x y $A"
    assert expand_word("'$A'", None) == "$A"


# ------------------------------------------------------------------------------------------- key_values


@pytest.mark.parametrize(
    ("args", "pairs"),
    [
        ('K=V K2="v 2"', [("K", "V"), ("K2", "v 2")]),
        ("K=V=W", [("K", "V=W")]),
        ("K= L=''", [("K", ""), ("L", "")]),
        ("K=a\\ b", [("K", "a b")]),
        ("K some value", [("K", "some value")]),
        ('K  "quoted value" x', [("K", "quoted value x")]),
        ('K="multi\nline"', [("K", "multi\nline")]),
        ("K='$A'", [("K", "$A")]),
    ],
)
def test_key_values(args: str, pairs: list[tuple[str, str]]) -> None:
    assert key_values(args, "ENV") == pairs


def test_key_values_with_env_keeps_values_whole() -> None:
    pairs = key_values("K=$SP Q=$Q S='$A' D=\"${UNSET:-x y}\" $A=k", "ENV", env=ENV)
    assert pairs == [("K", "x y"), ("Q", "it's"), ("S", "$A"), ("D", "x y"), ("a", "k")]
    assert key_values("K $SP and $A", "ENV", env=ENV) == [("K", "x y and a")]


@pytest.mark.parametrize(
    ("args", "keyword", "message"),
    [
        ("K", "ENV", "ENV must have two arguments"),
        ("K", "LABEL", "LABEL must have two arguments"),
        ("", "LABEL", "LABEL requires at least one argument"),
        ("a=1 b", "LABEL", 'Syntax error - can\'t find = in "b". Must be of the form: name=value'),
        ("a=1 =2", "ENV", "ENV names can not be blank"),
    ],
)
def test_key_values_errors(args: str, keyword: str, message: str) -> None:
    with pytest.raises(DockerfileError) as err:
        key_values(args, keyword)
    assert str(err.value) == message


def test_arg_pairs() -> None:
    assert arg_pairs('A B=1 C="x y" D=') == [("A", None), ("B", "1"), ("C", "x y"), ("D", "")]
    assert arg_pairs("V=$SP W=${UNSET:-d}", env=ENV) == [("V", "x y"), ("W", "d")]
