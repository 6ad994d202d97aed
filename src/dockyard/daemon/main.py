"""`dockyard daemon`: parse the daemon's flags, restore state, serve the Engine API."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dockyard.daemon.daemon import DEFAULT_DATA_ROOT, DEFAULT_EXEC_ROOT, DEFAULT_HOST


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dockyard daemon", description="Run the dockyard engine (Docker Engine API).")
    p.add_argument(
        "--data-root",
        default=os.environ.get("DOCKYARD_DATA_ROOT", DEFAULT_DATA_ROOT),
        help="root of persisted state (default %(default)s)",
    )
    p.add_argument("--exec-root", default=DEFAULT_EXEC_ROOT, help="root of runtime state (default %(default)s)")
    p.add_argument(
        "-H",
        "--host",
        action="append",
        dest="hosts",
        help="socket(s) to listen on: unix:///path or tcp://127.0.0.1:2375",
    )
    p.add_argument("-s", "--storage-driver", default="auto", help="overlay, vfs or auto (default)")
    p.add_argument("--default-runtime", default="builtin", help="builtin (default), runc or crun")
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        dest="insecure_registries",
        help="registry (host:port or CIDR) that may be reached over plain HTTP",
    )
    p.add_argument(
        "--max-concurrent-downloads",
        type=int,
        default=3,
        help="max concurrent layer downloads per pull (default %(default)s)",
    )
    p.add_argument("--bip", default="", help="address and prefix of the default bridge (e.g. 10.20.0.1/24)")
    p.add_argument("-D", "--debug", action="store_true", help="debug logging")
    p.add_argument("-l", "--log-level", default="info", help="debug, info, warn, error")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = logging.DEBUG if args.debug else getattr(logging, args.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if os.geteuid() != 0:
        print("dockyard daemon: must run as root", file=sys.stderr)
        return 1
    from dockyard.daemon.daemon import Daemon
    from dockyard.errors import DockyardError

    try:
        daemon = Daemon(
            args.data_root,
            args.exec_root,
            args.storage_driver,
            args.default_runtime,
            insecure_registries=tuple(args.insecure_registries),
            max_concurrent_downloads=max(1, args.max_concurrent_downloads),
            bip=args.bip,
        )
        daemon.restore()
        daemon.listen(args.hosts or [DEFAULT_HOST])
    except DockyardError as exc:
        print(f"dockyard daemon: {exc.message}", file=sys.stderr)
        return 1
    logging.getLogger("dockyard.daemon").info(
        "dockyard daemon ready: data root %s, storage %s, listening on %s",
        args.data_root,
        daemon.snapshotter.name,
        ", ".join(args.hosts or [DEFAULT_HOST]),
    )
    daemon.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
