"""`--format` handling and tables as docker prints them.

A format is `table [template]` (a header row, columns aligned by a Go-tabwriter port), `json` (one JSON
object per row), or any template. Rows are FieldProvider objects (ps, images, history) or raw dicts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from dockyard.cli.template import HEADER_FUNCTIONS, FieldProvider, TemplateError, parse
from dockyard.cli.units import human_duration, human_size

# typing costs ~5 ms to import: the CLI's hot path keeps it for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TABLE_PREFIX = "table"
ELLIPSIS = "…"

__all__ = [
    "HISTORY_TABLE",
    "IMAGES_DIGEST_TABLE",
    "IMAGES_TABLE",
    "PS_TABLE",
    "ContainerRow",
    "HistoryRow",
    "ImageRow",
    "TemplateError",
    "expand_image_rows",
    "render",
    "tabwrite",
]


# -------------------------------------------------------------------------------------------- tabwriter
def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Align tab-terminated cells like Go's tabwriter.NewWriter(out, 10, 1, 3, ' ', 0).

    The last cell of a line is not tab-terminated and never widens a column; a column's width is set
    per block of consecutive lines that have that column.
    """
    trailing_newline = text.endswith("\n")
    lines = [line.split("\t") for line in (text[:-1] if trailing_newline else text).split("\n")]
    out: list[str] = []
    _format_block(lines, 0, len(lines), [], minwidth, padding, out)
    return "\n".join(out) + ("\n" if trailing_newline else "")


def _format_block(
    lines: list[list[str]], line0: int, line1: int, widths: list[int], minwidth: int, padding: int, out: list[str]
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + padding)
            this += 1
        _format_block(lines, line0, this, [*widths, width], minwidth, padding, out)
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], start: int, end: int, widths: list[int], out: list[str]) -> None:
    for cells in lines[start:end]:
        out.append("".join(cell.ljust(widths[j]) if j < len(widths) else cell for j, cell in enumerate(cells)))


# ---------------------------------------------------------------------------------------------- render
class _Headers(FieldProvider):
    """The header row: every field renders as its column title, whatever its arguments."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def template_field(self, name: str, args: list[Any]) -> Any:
        return self.headers.get(name, "")


def prepare_format(fmt: str) -> tuple[bool, str]:
    """Split the `table` prefix off and expand `\\t`/`\\n` escapes as docker's preFormat does."""
    is_table = fmt.startswith(TABLE_PREFIX)
    if is_table:
        fmt = fmt[len(TABLE_PREFIX) :]
    fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return is_table, fmt


def render(fmt: str, rows: Iterable[Any], headers: dict[str, str] | None = None, default_table: str = "") -> str:
    """Render rows with a user or default format; raises TemplateError for bad templates."""
    if fmt == "json":
        fmt = "{{json .}}"
    elif fmt == TABLE_PREFIX and default_table:
        fmt = default_table
    is_table, source = prepare_format(fmt)
    try:
        template = parse(source)
    except TemplateError as exc:
        raise TemplateError(f"template parsing error: {exc}") from exc
    body = "".join(template.execute(row) + "\n" for row in rows)
    if not is_table:
        return body
    header = template.execute(_Headers(headers or {}), HEADER_FUNCTIONS) + "\n"
    return tabwrite(header + body)


# ------------------------------------------------------------------------------------------ field rows
def ellipsis(text: str, width: int) -> str:
    """formatter.Ellipsis: cut to `width` characters, the last one replaced by `…`."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 1 else text[:width]


def truncate_id(value: str) -> str:
    return value.removeprefix("sha256:")[:12]


def go_quote(text: str) -> str:
    """strconv.Quote for the characters commands contain."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_time_string(unix_seconds: float) -> str:
    """time.Unix(s, 0).String() in local time: `2024-01-02 15:04:05 +0000 UTC`."""
    local = time.localtime(unix_seconds)
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)


def since(unix_seconds: float, now: float | None = None) -> str:
    """docker's `X ago` for CREATED columns."""
    return human_duration((now if now is not None else time.time()) - unix_seconds) + " ago"


def display_ports(ports: Sequence[dict[str, Any]]) -> str:
    """formatter.DisplayablePorts: ranges grouped, host mappings last."""

    def key(port: dict[str, Any]) -> tuple:
        return (port.get("PrivatePort", 0), port.get("PublicPort", 0), port.get("Type", ""), port.get("IP", ""))

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    host_mappings: list[str] = []
    for port in sorted(ports, key=key):
        private, public = port.get("PrivatePort", 0), port.get("PublicPort", 0)
        ip, proto = port.get("IP", ""), port.get("Type", "tcp")
        group_key = proto
        if ip:
            if public != private:
                host = f"[{ip}]" if ":" in ip else ip
                host_mappings.append(f"{host}:{public}->{private}/{proto}")
                continue
            group_key = f"{ip}/{proto}"
        group = groups.get(group_key)
        if group is None:
            groups[group_key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_form_group(group_key, *group))
            groups[group_key] = [private, private]
    result += [_form_group(k, *g) for k, g in groups.items()]
    return ", ".join(result + host_mappings)


def _form_group(key: str, first: int, last: int) -> str:
    ip, _, proto = key.rpartition("/")
    group = str(first) if first == last else f"{first}-{last}"
    if ip:
        group = f"{ip}:{group}->{group}"
    return f"{group}/{proto}"


class ContainerRow(FieldProvider):
    """One `ps` row: docker's ContainerContext fields over a /containers/json summary."""

    fields = (
        "ID",
        "Image",
        "Command",
        "CreatedAt",
        "RunningFor",
        "Ports",
        "State",
        "Status",
        "Size",
        "Names",
        "Labels",
        "Label",
        "Mounts",
        "Networks",
        "LocalVolumes",
    )
    headers = {
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Ports": "PORTS",
        "State": "STATE",
        "Status": "STATUS",
        "Size": "SIZE",
        "Names": "NAMES",
        "Labels": "LABELS",
        "Label": "LABEL",
        "Mounts": "MOUNTS",
        "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES",
    }

    def __init__(self, summary: dict[str, Any], trunc: bool = True, now: float | None = None) -> None:
        self.c = summary
        self.trunc = trunc
        self.now = now

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name)() for name in sorted(self.fields) if name != "Label"}

    def ID(self) -> str:
        return truncate_id(self.c.get("Id", "")) if self.trunc else self.c.get("Id", "")

    def Image(self) -> str:
        image = self.c.get("Image") or ""
        if not image:
            return "<no image>"
        if self.trunc:
            if image.startswith("sha256:") or truncate_id(self.c.get("ImageID", "")) == truncate_id(image):
                return truncate_id(image)
            return image.split("@", 1)[0]
        return image

    def Command(self) -> str:
        command = self.c.get("Command") or ""
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def CreatedAt(self) -> str:
        return go_time_string(self.c.get("Created", 0))

    def RunningFor(self) -> str:
        return since(self.c.get("Created", 0), self.now)

    def Ports(self) -> str:
        return display_ports(self.c.get("Ports") or [])

    def State(self) -> str:
        return self.c.get("State", "")

    def Status(self) -> str:
        return self.c.get("Status", "")

    def Size(self) -> str:
        size_rw = human_size(self.c.get("SizeRw") or 0, 3)
        root = self.c.get("SizeRootFs") or 0
        return f"{size_rw} (virtual {human_size(root, 3)})" if root > 0 else size_rw

    def Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = next(([n] for n in names if "/" not in n), names)
        return ",".join(names)

    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(f"{k}={labels[k]}" for k in sorted(labels))

    def Label(self, name: str) -> str:
        return (self.c.get("Labels") or {}).get(name, "")

    def Mounts(self) -> str:
        names = []
        for mount in self.c.get("Mounts") or []:
            name = mount.get("Name") or mount.get("Source", "")
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def Networks(self) -> str:
        networks = ((self.c.get("NetworkSettings") or {}).get("Networks")) or {}
        return ",".join(sorted(networks))

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))


class ImageRow(FieldProvider):
    """One `images` row (an image expanded per repository:tag)."""

    fields = (
        "Repository",
        "Tag",
        "Digest",
        "ID",
        "CreatedSince",
        "CreatedAt",
        "Size",
        "Containers",
        "SharedSize",
        "UniqueSize",
        "VirtualSize",
    )
    headers = {
        "Repository": "REPOSITORY",
        "Tag": "TAG",
        "Digest": "DIGEST",
        "ID": "IMAGE ID",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "Size": "SIZE",
        "Containers": "CONTAINERS",
        "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    }

    def __init__(
        self, summary: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool = True, now: float | None = None
    ) -> None:
        self.i = summary
        self.repo, self.tag, self.digest = repo, tag, digest
        self.trunc = trunc
        self.now = now

    def Repository(self) -> str:
        return self.repo

    def Tag(self) -> str:
        return self.tag

    def Digest(self) -> str:
        return self.digest

    def ID(self) -> str:
        return truncate_id(self.i.get("Id", "")) if self.trunc else self.i.get("Id", "")

    def CreatedSince(self) -> str:
        return since(self.i.get("Created", 0), self.now)

    def CreatedAt(self) -> str:
        return go_time_string(self.i.get("Created", 0))

    def Size(self) -> str:
        return human_size(self.i.get("Size") or 0, 3)

    def Containers(self) -> str:
        count = self.i.get("Containers", -1)
        return "N/A" if count is None or count < 0 else str(count)

    def SharedSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared is None or shared < 0 else human_size(shared, 3)

    def UniqueSize(self) -> str:
        shared = self.i.get("SharedSize", -1)
        if shared is None or shared < 0:
            return "N/A"
        return human_size((self.i.get("Size") or 0) - shared, 3)

    def VirtualSize(self) -> str:
        return human_size(self.i.get("VirtualSize", self.i.get("Size")) or 0, 3)


def expand_image_rows(images: list[dict[str, Any]], trunc: bool = True, now: float | None = None) -> list[ImageRow]:
    """One row per repository:tag (and per untagged digest), `<none>` for dangling images."""
    rows: list[ImageRow] = []
    for image in images:
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = [d for d in image.get("RepoDigests") or [] if d != "<none>@<none>"]
        if not tags and not digests:
            rows.append(ImageRow(image, "<none>", "<none>", "<none>", trunc, now))
            continue
        digest_by_repo: dict[str, str] = {}
        for ref in digests:
            repo, _, digest = ref.partition("@")
            digest_by_repo.setdefault(repo, digest)
        tagged_repos = set()
        for ref in tags:
            repo, tag = split_repo_tag(ref)
            tagged_repos.add(repo)
            rows.append(ImageRow(image, repo, tag or "<none>", digest_by_repo.get(repo, "<none>"), trunc, now))
        for repo, digest in digest_by_repo.items():
            if repo not in tagged_repos:
                rows.append(ImageRow(image, repo, "<none>", digest, trunc, now))
    return rows


def split_repo_tag(ref: str) -> tuple[str, str]:
    """`host:5000/a/b:tag` -> (`host:5000/a/b`, `tag`); the tag is after the last `:` past the last `/`."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


class HistoryRow(FieldProvider):
    """One `history` row."""

    fields = ("ID", "CreatedSince", "CreatedAt", "CreatedBy", "Size", "Comment")
    headers = {
        "ID": "IMAGE",
        "CreatedSince": "CREATED",
        "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY",
        "Size": "SIZE",
        "Comment": "COMMENT",
    }

    def __init__(self, entry: dict[str, Any], trunc: bool = True, human: bool = True, now: float | None = None) -> None:
        self.h = entry
        self.trunc = trunc
        self.human = human
        self.now = now

    def ID(self) -> str:
        image_id = self.h.get("Id", "")
        if image_id == "<missing>" or not self.trunc:
            return image_id
        return truncate_id(image_id)

    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt()
        return since(self.h.get("Created", 0), self.now)

    def CreatedAt(self) -> str:
        if self.human:
            return go_time_string(self.h.get("Created", 0))
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.h.get("Created", 0)))

    def CreatedBy(self) -> str:
        created_by = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(created_by, 45) if self.trunc else created_by

    def Size(self) -> str:
        size = self.h.get("Size") or 0
        return human_size(size, 3) if self.human else str(size)

    def Comment(self) -> str:
        return self.h.get("Comment") or ""


PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGEST_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
