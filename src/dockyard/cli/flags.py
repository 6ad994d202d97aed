"""A small pflag-compatible parser: docker's flag syntax, errors and usage text.

argparse differs from cobra/pflag in ways scripts notice (`--rm=false`, `-e=X`, `-eX`, error wording,
exit code 125), hence this module.
"""

from __future__ import annotations

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "dockyard"


class StatusError(Exception):
    """Exit with `status`, printing `message` (when not empty) on stderr, as docker's cli.StatusError."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class UsageError(StatusError):
    """A flag error: docker prints it with the usage line and exits 125."""

    def __init__(self, message: str, flagset: FlagSet) -> None:
        text = (
            f"{message}\n\nUsage:  {flagset.usage_line()}\n\nRun '{PROG} {flagset.command} --help' for more information"
        )
        super().__init__(125, text)


class HelpRequested(Exception):
    """`--help` was given: print help and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class Flag:
    """One flag's definition (a plain class: `dataclasses` would add ~8 ms to every CLI start)."""

    __slots__ = ("default", "dest", "help", "kind", "long", "metavar", "short")

    def __init__(self, long: str, short: str, kind: str, default: Any, help: str, dest: str, metavar: str = "") -> None:
        self.long = long
        self.short = short
        self.kind = kind  # bool | str | list | int
        self.default = default
        self.help = help
        self.dest = dest
        self.metavar = metavar

    @property
    def display(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Options:
    """Parsed flag values by dest, plus which flags were given (pflag's `Changed`)."""

    def __init__(self, values: dict[str, Any], changed: set[str] | None = None) -> None:
        self.values = values
        self.changed = changed if changed is not None else set()

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


class FlagSet:
    """Flags of one command; `parse(argv)` returns (Options, positional arguments)."""

    def __init__(
        self,
        command: str,
        usage: str,
        description: str = "",
        interspersed: bool = True,
        min_args: int = 0,
        max_args: int | None = None,
    ) -> None:
        self.command = command
        self.usage = usage
        self.description = description
        self.interspersed = interspersed
        self.min_args = min_args
        self.max_args = max_args
        self.flags: list[Flag] = []
        self._long: dict[str, Flag] = {}
        self._short: dict[str, Flag] = {}

    def add(
        self,
        names: str,
        kind: str = "bool",
        default: Any = None,
        help: str = "",
        dest: str | None = None,
        metavar: str = "",
    ) -> FlagSet:
        """Declare a flag: names as "-d, --detach" or "--rm"."""
        short = long = ""
        for name in (n.strip() for n in names.split(",")):
            if name.startswith("--"):
                long = name[2:]
            else:
                short = name[1:]
        if default is None:
            default = {"bool": False, "list": [], "str": "", "int": 0, "duration": 0}.get(kind)
        flag = Flag(long, short, kind, default, help, dest or long.replace("-", "_"), metavar)
        self.flags.append(flag)
        self._long[long] = flag
        if short:
            self._short[short] = flag
        return self

    def usage_line(self) -> str:
        return f"{PROG} {self.command} {self.usage}".rstrip()

    def help_text(self) -> str:
        lines = [f"\nUsage:  {self.usage_line()}\n", self.description + "\n" if self.description else ""]
        lines.append("Options:")
        rows = []
        for flag in [
            *self.flags,
            Flag("help", "" if "h" in self._short else "h", "bool", False, "Print usage", "help"),
        ]:
            kind = "" if flag.kind == "bool" else f" {flag.metavar or flag.kind}"
            prefix = f"-{flag.short}, " if flag.short else "    "
            rows.append((f"  {prefix}--{flag.long}{kind}", flag.help))
        width = max(len(r[0]) for r in rows) + 3
        lines += [f"{left.ljust(width)}{text}".rstrip() for left, text in rows]
        return "\n".join(line for line in lines if line is not None) + "\n"

    def parse(self, argv: list[str]) -> tuple[Options, list[str]]:
        options = Options({f.dest: list(f.default) if f.kind == "list" else f.default for f in self.flags})
        positionals: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            if arg == "--":
                positionals += argv[i + 1 :]
                break
            if arg.startswith("--") and len(arg) > 2:
                i = self._parse_long(argv, i, options)
            elif arg.startswith("-") and len(arg) > 1:
                i = self._parse_shorts(argv, i, options)
            else:
                positionals.append(arg)
                if not self.interspersed:
                    positionals += argv[i + 1 :]
                    break
            i += 1
        self._check_args(positionals)
        return options, positionals

    def _check_args(self, args: list[str]) -> None:
        def fail(text: str) -> StatusError:
            return StatusError(
                1 if self.min_args == 0 or self.command not in ("run", "create") else 125,
                f'"{PROG} {self.command}" {text}\n\nUsage:  {self.usage_line()}\n\n'
                f"Run '{PROG} {self.command} --help' for more information",
            )

        plural = "argument" if self.min_args == 1 else "arguments"
        if self.max_args == 0 and args:
            raise fail("accepts no arguments.")
        if self.max_args is not None and self.min_args == self.max_args and len(args) != self.min_args:
            raise fail(f"requires exactly {self.min_args} {plural}.")
        if len(args) < self.min_args:
            raise fail(f"requires at least {self.min_args} {plural}.")
        if self.max_args is not None and len(args) > self.max_args:
            raise fail(f"requires at most {self.max_args} {'argument' if self.max_args == 1 else 'arguments'}.")

    def _parse_long(self, argv: list[str], i: int, options: Options) -> int:
        name, has_value, value = argv[i][2:].partition("=")
        if name == "help":
            raise HelpRequested(self.help_text())
        flag = self._long.get(name)
        if flag is None:
            raise UsageError(f"unknown flag: --{name}", self)
        if flag.kind == "bool":
            self._set(flag, value if has_value else "true", options)
            return i
        if not has_value:
            if i + 1 >= len(argv):
                raise UsageError(f"flag needs an argument: --{name}", self)
            i += 1
            value = argv[i]
        self._set(flag, value, options)
        return i

    def _parse_shorts(self, argv: list[str], i: int, options: Options) -> int:
        arg = argv[i]
        shorts = arg[1:]
        j = 0
        while j < len(shorts):
            char = shorts[j]
            flag = self._short.get(char)
            if flag is None:
                if char == "h":
                    raise HelpRequested(self.help_text())
                raise UsageError(f"unknown shorthand flag: '{char}' in {arg}", self)
            rest = shorts[j + 1 :]
            if flag.kind == "bool":
                if rest.startswith("="):
                    self._set(flag, rest[1:], options)
                    return i
                self._set(flag, "true", options)
                j += 1
                continue
            if rest:
                value = rest[1:] if rest.startswith("=") else rest
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UsageError(f"flag needs an argument: '{char}' in -{char}", self)
            self._set(flag, value, options)
            return i
        return i

    def _set(self, flag: Flag, value: str, options: Options) -> None:
        options.changed.add(flag.dest)
        if flag.kind == "bool":
            if value not in _TRUE and value not in _FALSE:
                raise UsageError(
                    f'invalid argument "{value}" for "{flag.display}" flag: '
                    f'strconv.ParseBool: parsing "{value}": invalid syntax',
                    self,
                )
            options.values[flag.dest] = value in _TRUE
        elif flag.kind == "int":
            try:
                options.values[flag.dest] = int(value)
            except ValueError as exc:
                raise UsageError(
                    f'invalid argument "{value}" for "{flag.display}" flag: '
                    f'strconv.ParseInt: parsing "{value}": invalid syntax',
                    self,
                ) from exc
        elif flag.kind == "duration":  # Go's time.ParseDuration, kept as nanoseconds like the API
            from dockyard.util.timefmt import parse_go_duration

            seconds = parse_go_duration(value)
            if seconds is None:
                raise UsageError(
                    f'invalid argument "{value}" for "{flag.display}" flag: time: invalid duration "{value}"', self
                )
            options.values[flag.dest] = round(seconds * 1_000_000_000)
        elif flag.kind == "list":
            options.values[flag.dest].append(value)
        else:
            options.values[flag.dest] = value
