"""The /etc/hosts, /etc/hostname and /etc/resolv.conf a container gets (bind-mounted, as docker does)."""

from __future__ import annotations

from pathlib import Path

from dockyard.network.dns import DNS_ADDRESS
from dockyard.util.fs import atomic_write

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")  # docker's defaults when the host has only local ones


def hosts_content(hostname: str, addresses: list[str], extra_hosts: list[str]) -> str:
    lines = [HOSTS_HEADER]
    for entry in extra_hosts:  # docker's --add-host name:ip
        name, _, ip = entry.partition(":")
        if ip:
            lines.append(f"{ip}\t{name}\n")
    lines += [f"{address}\t{hostname}\n" for address in addresses]
    return "".join(lines)


def rewrite_in_place(path: str, content: str) -> None:
    """Update a file a running container has bind-mounted: a rename would leave the container on the
    old inode, so (as docker does for /etc/hosts) the same file is truncated and written."""
    with open(path, "r+b") as f:
        f.write(content.encode())
        f.truncate()


def _host_resolv(path: str) -> tuple[list[str], list[str], list[str]]:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    try:
        text = Path(path).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0].startswith(("#", ";")):
            continue
        if parts[0] == "nameserver":
            nameservers.append(parts[1])
        elif parts[0] in ("search", "domain"):
            search = parts[1:]
        elif parts[0] == "options":
            options += parts[1:]
    return nameservers, search, options


def resolv_content(
    embedded_dns: bool,
    dns: list[str],
    dns_search: list[str],
    dns_options: list[str],
    host_resolv: str = "/etc/resolv.conf",
) -> str:
    """docker's rules: user networks ask 127.0.0.11; otherwise the host's servers minus local ones."""
    host_ns, host_search, host_options = _host_resolv(host_resolv)
    search = dns_search or host_search
    options = dns_options or host_options
    if embedded_dns:
        nameservers = [DNS_ADDRESS]
        options = [*options, "ndots:0"] if not any(o.startswith("ndots:") for o in options) else options
    else:
        nameservers = dns or [n for n in host_ns if not n.startswith("127.") and n != "::1"]
        nameservers = nameservers or list(FALLBACK_NAMESERVERS)
    out = [f"nameserver {n}\n" for n in nameservers]
    if search:
        out.append("search " + " ".join(search) + "\n")
    if options:
        out.append("options " + " ".join(options) + "\n")
    return "".join(out)


def write_files(directory: Path, hostname: str, hosts: str, resolv: str) -> dict[str, str]:
    """Write the three files; returns the record fields pointing at them."""
    paths = {
        "HostnamePath": directory / "hostname",
        "HostsPath": directory / "hosts",
        "ResolvConfPath": directory / "resolv.conf",
    }
    # Written again at every start: atomic, but no fsync (a crash loses nothing the next start won't rewrite).
    atomic_write(paths["HostnamePath"], (hostname + "\n").encode(), durable=False)
    atomic_write(paths["HostsPath"], hosts.encode(), durable=False)
    atomic_write(paths["ResolvConfPath"], resolv.encode(), durable=False)
    return {key: str(value) for key, value in paths.items()}
