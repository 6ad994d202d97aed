"""A Go text/template subset: the part docker users script `--format` with.

Supported: text and `{{ }}` actions with `-` trim markers and comments; pipelines with `|`; fields and
chains (`.A.B`, `$x.A`, `(pipeline).A`); variables (`$`, `$x := ...`, `$x = ...`); string, raw-string,
number, bool and nil literals; `if`/`else if`/`else`, `range` (with `$k, $v :=`), `with`; functions
json, join, split, title, lower, upper, truncate, pad, print, printf, println, len, index, slice, eq, ne,
lt, le, gt, ge, and, or, not. Values print as Go's fmt would (`<no value>`, `<nil>`, `map[k:v]`, `[a b]`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class TemplateError(Exception):
    """A template that does not parse, or fails while executing (docker's `template: ...` errors)."""


class _Missing:
    """A map key that does not exist: prints as Go's `<no value>`."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class FieldProvider:
    """Objects whose template fields are computed (ps, images rows). Subclasses list their fields."""

    fields: tuple[str, ...] = ()

    def template_field(self, name: str, args: list[Any]) -> Any:
        if name not in self.fields:
            raise TemplateError(f"can't evaluate field {name} in type *{type(self).__name__}")
        return getattr(self, name)(*args)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in sorted(self.fields)}


# --------------------------------------------------------------------------------------------- values
def go_float(value: float) -> str:
    """Format a float as Go's %v: shortest digits, exponent form when exp < -4 or exp >= 6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return sign + "0"
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    leading = len(digits) - len(digits.lstrip("0"))
    point = len(whole) + int(exp_text or 0) - leading  # digits before the decimal point
    digits = digits.strip("0")
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if len(digits) <= point:
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def sprint(value: Any) -> str:
    """Go's fmt.Sprint of one value."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(sprint(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{sprint(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, FieldProvider):
        return "&{" + " ".join(sprint(v) for v in value.to_json().values()) + "}"
    return str(value)


def go_json(value: Any) -> str:
    """json.Marshal: compact, HTML-escaped, UTF-8 kept."""
    if isinstance(value, FieldProvider):
        value = value.to_json()
    if value is MISSING:
        value = None
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _json_default(value: Any) -> Any:
    if isinstance(value, FieldProvider):
        return value.to_json()
    raise TypeError(f"cannot marshal {type(value).__name__}")


def truth(value: Any) -> bool:
    """Go template truthiness: false, 0, nil and empty strings/slices/maps are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


# ------------------------------------------------------------------------------------------ functions
def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, dict):
            item = item.get(key, "")
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int):
                raise TemplateError(f"cannot index slice/array with type {type(key).__name__}")
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif item is None or item is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"can't index item of type {type(item).__name__}")
    return item


def _printf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the common verbs (%s %v %d %q %f %x %%)."""
    out: list[str] = []
    arg_iter = iter(args)
    pattern = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([a-zA-Z%])")
    pos = 0
    for match in pattern.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        arg = next(arg_iter, MISSING)
        if arg is MISSING:
            out.append(f"%!{verb}(MISSING)")
            continue
        if verb in "sv":
            text = sprint(arg)
        elif verb == "q":
            text = json.dumps(sprint(arg), ensure_ascii=False)
        elif verb == "d" and isinstance(arg, int):
            text = str(arg)
        elif verb == "f" and isinstance(arg, int | float):
            text = f"{arg:.{int(precision) if precision else 6}f}"
        elif verb == "x":
            text = format(arg, "x") if isinstance(arg, int) else sprint(arg).encode().hex()
        else:
            text = f"%!{verb}({sprint(arg)})"
        if width:
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        out.append(text)
    out.append(fmt[pos:])
    return "".join(out)


def _compare(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(a: Any, b: Any) -> bool:
        try:
            return op(a, b)
        except TypeError as exc:
            raise TemplateError("incompatible types for comparison") from exc

    return compare


def _eq(a: Any, *others: Any) -> bool:
    return any(a == b for b in others)


def _truncate(value: Any, length: int) -> str:
    text = sprint(value)
    return text if len(text) < length else text[:length]


def _pad(value: Any, prefix: int, suffix: int) -> str:
    text = sprint(value)
    return " " * prefix + text + " " * suffix if text else text


def _go_title(value: str) -> str:
    return re.sub(r"(^|[^\w'])(\w)", lambda m: m.group(1) + m.group(2).upper(), value)


def _print(*args: Any) -> str:
    """fmt.Sprint: spaces only between operands when neither side is a string."""
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += sprint(arg)
    return out


def _slice(item: Any, *indexes: int) -> Any:
    return item[slice(*indexes)] if indexes else item


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "join": lambda items, sep: sep.join(sprint(i) for i in (items or [])),
    "split": lambda text, sep: sprint(text).split(sep),
    "title": lambda text: _go_title(sprint(text)),
    "lower": lambda text: sprint(text).lower(),
    "upper": lambda text: sprint(text).upper(),
    "truncate": _truncate,
    "pad": _pad,
    "print": _print,
    "printf": _printf,
    "println": lambda *args: " ".join(sprint(a) for a in args) + "\n",
    "len": lambda item: len(item),
    "index": _index,
    "slice": _slice,
    "eq": _eq,
    "ne": lambda a, b: a != b,
    "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "not": lambda value: not truth(value),
}
LAZY = {"and", "or"}  # short-circuit, evaluated by the executor

# Headers of `table` formats render through the same template; these functions pass strings through.
HEADER_FUNCTIONS: dict[str, Callable[..., Any]] = {
    **FUNCTIONS,
    "json": lambda v: v,
    "join": lambda v, _s: v,
    "split": lambda v, _s: v,
    "title": lambda v: v,
    "lower": lambda v: v,
    "upper": lambda v: v,
    "truncate": lambda v, _n: v,
    "pad": lambda v, _a, _b: v,
}

# ---------------------------------------------------------------------------------------------- nodes
# Plain slotted classes, not dataclasses: `dataclasses` pulls in `inspect`, ~6 ms of every `ps`.


class _Node:
    """An AST node: positional fields in `__slots__` order."""

    __slots__: tuple[str, ...] = ()

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(getattr(self, n)) for n in self.__slots__)})"


class Field(_Node):
    __slots__ = ("base", "names")  # base: None = dot, str "$name" = variable, or a Pipeline


class Var(_Node):
    __slots__ = ("name",)


class Ident(_Node):
    __slots__ = ("name",)


class Literal(_Node):
    __slots__ = ("value",)


class Command(_Node):
    __slots__ = ("args",)


class Pipeline(_Node):
    __slots__ = ("commands", "decl", "assign")  # noqa: RUF023 - positional order

    def __init__(self, commands: list[Command], decl: list[str] | None = None, assign: bool = False) -> None:
        super().__init__(commands, decl or [], assign)


class Action(_Node):
    __slots__ = ("pipe",)


class Branch(_Node):
    __slots__ = ("kind", "pipe", "body", "orelse")  # noqa: RUF023 - positional order; kind: if|range|with


# ----------------------------------------------------------------------------------------------- lexer
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\]|\\.)+')
    | (?P<declare>:=)
    | (?P<punct>[|(),=])
    | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    | (?P<number>[-+]?(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<chain>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
    )""",
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"template: :1: unexpected {text[pos:].strip()[:1]!r} in command")
        kind = match.lastgroup or ""
        value = match.group(kind)
        # A field right after `)` or a variable, without space, is a chain on that value.
        if (
            kind == "field"
            and value != "."
            and match.start(kind) == pos
            and tokens
            and (tokens[-1][1] == ")" or tokens[-1][0] == "var")
        ):
            kind = "chain"
        tokens.append((kind, value))
        pos = match.end()
    return tokens


def _split_actions(source: str) -> list[tuple[str, str]]:
    """Split into ("text", s) and ("action", inner) pieces, applying `{{-`/`-}}` trimming."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            pieces.append(("text", source[pos:]))
            break
        text = source[pos:start]
        inner_start = start + 2
        if (
            source.startswith("- ", inner_start)
            or source.startswith("-\t", inner_start)
            or source.startswith("-\n", inner_start)
        ):
            text = text.rstrip(" \t\r\n")
            inner_start += 1
        end = source.find("}}", inner_start)
        if end < 0:
            raise TemplateError("template: :1: unclosed action")
        inner = source[inner_start:end]
        pos = end + 2
        if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
            inner = inner[:-1]
            rest = source[pos:]
            pos += len(rest) - len(rest.lstrip(" \t\r\n"))
        pieces.append(("text", text))
        stripped = inner.strip()
        if stripped.startswith("/*") and stripped.endswith("*/"):
            continue
        pieces.append(("action", inner))
    return [p for p in pieces if p != ("text", "")]


# ---------------------------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, source: str) -> None:
        self.pieces = _split_actions(source)
        self.pos = 0

    def parse(self) -> list[Any]:
        nodes, terminator = self._list()
        if terminator is not None:
            raise TemplateError(f"template: :1: unexpected {{{{{terminator}}}}}")
        return nodes

    def _list(self) -> tuple[list[Any], str | None]:
        """Parse nodes until {{end}}/{{else ...}}; return them and the terminator text."""
        nodes: list[Any] = []
        while self.pos < len(self.pieces):
            kind, text = self.pieces[self.pos]
            self.pos += 1
            if kind == "text":
                nodes.append(text)
                continue
            words = text.strip().split(None, 1)
            keyword = words[0] if words else ""
            if keyword in ("end", "else"):
                return nodes, text.strip()
            if keyword in ("if", "range", "with"):
                nodes.append(self._branch(keyword, words[1] if len(words) > 1 else ""))
            elif keyword in ("define", "template", "block", "break", "continue"):
                raise TemplateError(f"template: :1: {{{{{keyword}}}}} is not supported")
            else:
                nodes.append(Action(self._pipeline(text, allow_decl=True)))
        return nodes, None

    def _branch(self, kind: str, rest: str) -> Branch:
        if not rest.strip():
            raise TemplateError(f"template: :1: missing value for {kind}")
        pipe = self._pipeline(rest, allow_decl=True)
        body, terminator = self._list()
        orelse: list[Any] = []
        if terminator is None:
            raise TemplateError("template: :1: unexpected EOF")
        if terminator.startswith("else"):
            tail = terminator[4:].strip()
            if tail.startswith(("if ", "with ")) and kind != "range":
                sub_kind, sub_rest = tail.split(None, 1)
                orelse = [self._branch(sub_kind, sub_rest)]
                return Branch(kind, pipe, body, orelse)
            if tail:
                raise TemplateError(f"template: :1: unexpected {tail!r} in else")
            orelse, terminator = self._list()
            if terminator != "end":
                raise TemplateError("template: :1: expected end; found " + (terminator or "EOF"))
        return Branch(kind, pipe, body, orelse)

    def _pipeline(self, text: str, allow_decl: bool = False) -> Pipeline:
        tokens = _tokenize(text)
        pipe, rest = self._parse_pipe(tokens, allow_decl)
        if rest:
            raise TemplateError(f"template: :1: unexpected {rest[0][1]!r} in operand")
        return pipe

    def _parse_pipe(self, tokens: list[tuple[str, str]], allow_decl: bool) -> tuple[Pipeline, list]:
        decl: list[str] = []
        assign = False
        if allow_decl and tokens and tokens[0][0] == "var":
            # `$x :=`, `$x =`, or `$k, $v :=`
            names = [tokens[0][1]]
            i = 1
            if len(tokens) > 3 and tokens[1][1] == "," and tokens[2][0] == "var":
                names.append(tokens[2][1])
                i = 3
            if i < len(tokens) and tokens[i][0] in ("declare", "punct") and tokens[i][1] in (":=", "="):
                decl, assign = names, tokens[i][1] == "="
                tokens = tokens[i + 1 :]
        commands: list[Command] = []
        args: list[Any] = []
        after_pipe = False
        while tokens:
            kind, value = tokens[0]
            if value == ")":
                break
            tokens = tokens[1:]
            if value == "|":
                if not args:
                    raise TemplateError("template: :1: missing command")
                commands.append(Command(args))
                args = []
                after_pipe = True
                continue
            if value == "(":
                sub, tokens = self._parse_pipe(tokens, allow_decl=False)
                if not tokens or tokens[0][1] != ")":
                    raise TemplateError("template: :1: unclosed left paren")
                tokens = tokens[1:]
                node: Any = sub
                if tokens and tokens[0][0] == "chain":
                    node = Field(sub, tokens[0][1].split(".")[1:])
                    tokens = tokens[1:]
                args.append(node)
                continue
            args.append(self._operand(kind, value, tokens))
            if kind == "var" and tokens and tokens[0][0] == "chain":
                args[-1] = Field(value, tokens[0][1].split(".")[1:])
                tokens = tokens[1:]
        if args:
            commands.append(Command(args))
        elif after_pipe:
            raise TemplateError("template: :1: missing command after |")
        if not commands:
            raise TemplateError("template: :1: missing value for command")
        return Pipeline(commands, decl, assign), tokens

    @staticmethod
    def _operand(kind: str, value: str, tokens: list) -> Any:
        if kind == "field":
            return Field(None, [] if value == "." else value.split(".")[1:])
        if kind == "var":
            return Var(value)
        if kind == "str":
            return Literal(json.loads(value) if "\\x" not in value else value[1:-1])
        if kind == "raw":
            return Literal(value[1:-1])
        if kind == "char":
            return Literal(ord(json.loads('"' + value[1:-1] + '"')))
        if kind == "number":
            if value.lower().startswith(("0x", "+0x", "-0x")):
                return Literal(int(value, 16))
            return Literal(float(value) if any(c in value for c in ".eE") else int(value))
        if kind == "ident":
            if value in ("true", "false"):
                return Literal(value == "true")
            if value == "nil":
                return Literal(None)
            if value not in FUNCTIONS and value not in LAZY:
                raise TemplateError(f'template: :1: function "{value}" not defined')
            return Ident(value)
        raise TemplateError(f"template: :1: unexpected {value!r} in operand")


# -------------------------------------------------------------------------------------------- executor
class Template:
    """A parsed template; `execute(data)` renders it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = _Parser(source).parse()

    def execute(self, data: Any, functions: dict[str, Callable[..., Any]] | None = None) -> str:
        executor = _Executor(data, functions or FUNCTIONS)
        out: list[str] = []
        executor.run(self.nodes, data, out)
        return "".join(out)


class _Executor:
    def __init__(self, root: Any, functions: dict[str, Callable[..., Any]]) -> None:
        self.functions = functions
        self.vars: list[tuple[str, Any]] = [("$", root)]

    def run(self, nodes: list[Any], dot: Any, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, Action):
                value = self.pipeline(node.pipe, dot)
                if not node.pipe.decl:
                    out.append(sprint(value))
            else:
                self.branch(node, dot, out)

    def branch(self, node: Branch, dot: Any, out: list[str]) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self._range(node, dot, out)
                return
            value = self.pipeline(node.pipe, dot)
            if truth(value):
                self.run(node.body, value if node.kind == "with" else dot, out)
            else:
                self.run(node.orelse, dot, out)
        finally:
            del self.vars[mark:]

    def _range(self, node: Branch, dot: Any, out: list[str]) -> None:
        decl = node.pipe.decl
        value = self.pipeline(Pipeline(node.pipe.commands), dot)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, list | tuple):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise TemplateError(f"range can't iterate over {sprint(value)}")
        if not items:
            self.run(node.orelse, dot, out)
            return
        for key, item in items:
            mark = len(self.vars)
            if len(decl) == 1:
                self.vars.append((decl[0], item))
            elif len(decl) == 2:
                self.vars += [(decl[0], key), (decl[1], item)]
            self.run(node.body, item, out)
            del self.vars[mark:]

    def lookup_var(self, name: str) -> Any:
        for var_name, value in reversed(self.vars):
            if var_name == name:
                return value
        raise TemplateError(f'template: :1: undefined variable "{name}"')

    def pipeline(self, pipe: Pipeline, dot: Any) -> Any:
        value: Any = MISSING
        for i, command in enumerate(pipe.commands):
            value = self.command(command, dot, value if i else MISSING, piped=i > 0)
        if pipe.decl:
            if pipe.assign:
                for idx in range(len(self.vars) - 1, -1, -1):
                    if self.vars[idx][0] == pipe.decl[0]:
                        self.vars[idx] = (pipe.decl[0], value)
                        break
                else:
                    raise TemplateError(f'template: :1: undefined variable "{pipe.decl[0]}"')
            else:
                self.vars.append((pipe.decl[-1], value))
        return value

    def command(self, command: Command, dot: Any, piped_value: Any, piped: bool) -> Any:
        first, rest = command.args[0], command.args[1:]
        if isinstance(first, Ident):
            if first.name in LAZY:
                return self._and_or(first.name, rest, dot, piped_value, piped)
            args = [self.arg(a, dot) for a in rest] + ([piped_value] if piped else [])
            function = self.functions[first.name]
            try:
                return function(*args)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(f"template: :1: error calling {first.name}: {exc}") from exc
        if isinstance(first, Field) and (rest or piped):
            args = [self.arg(a, dot) for a in rest] + ([piped_value] if piped else [])
            return self.field(first, dot, args)
        if rest or piped:
            raise TemplateError(f"template: :1: can't give argument to non-function {self._describe(first)}")
        return self.arg(first, dot)

    def _and_or(self, name: str, rest: list[Any], dot: Any, piped_value: Any, piped: bool) -> Any:
        values = [lambda a=a: self.arg(a, dot) for a in rest]
        if piped:
            values.append(lambda: piped_value)
        if not values:
            raise TemplateError(f"template: :1: wrong number of args for {name}")
        result: Any = None
        for get in values:
            result = get()
            if truth(result) != (name == "and"):
                return result
        return result

    @staticmethod
    def _describe(node: Any) -> str:
        if isinstance(node, Literal):
            return sprint(node.value)
        return type(node).__name__

    def arg(self, node: Any, dot: Any) -> Any:
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Var):
            return self.lookup_var(node.name)
        if isinstance(node, Field):
            return self.field(node, dot, [])
        if isinstance(node, Pipeline):
            return self.pipeline(node, dot)
        if isinstance(node, Ident):
            return self.command(Command([node]), dot, MISSING, False)
        raise TemplateError(f"template: :1: unexpected operand {node!r}")

    def field(self, node: Field, dot: Any, args: list[Any]) -> Any:
        if node.base is None:
            value = dot
        elif isinstance(node.base, str):
            value = self.lookup_var(node.base)
        else:
            value = self.pipeline(node.base, dot)
        for i, name in enumerate(node.names):
            last = i == len(node.names) - 1
            value = self._get(value, name, args if last else [])
        return value

    @staticmethod
    def _get(value: Any, name: str, args: list[Any]) -> Any:
        if isinstance(value, FieldProvider):
            return value.template_field(name, args)
        if args:
            raise TemplateError(f"template: :1: {name} has arguments but cannot be invoked as function")
        if isinstance(value, dict):
            return value.get(name, MISSING)
        if value is None or value is MISSING:
            raise TemplateError(f"template: :1: nil pointer evaluating interface {{}}.{name}")
        raise TemplateError(f"template: :1: can't evaluate field {name} in type {type(value).__name__}")


def parse(source: str) -> Template:
    """Parse a template, raising TemplateError on bad syntax."""
    return Template(source)
