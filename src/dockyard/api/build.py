"""`POST /build`: the classic builder behind the Engine API (what `docker build` uses without BuildKit)."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from dockyard.api.http import Request, StreamResponse
from dockyard.api.router import Router
from dockyard.errors import InvalidParameter


def _extract_context(req: Request, root: Path) -> Path:
    """The context tar (plain, gzip, bzip2 or xz, as the client sent it) unpacked into a fresh
    directory; the "data" filter refuses absolute paths, `..`, links out and device nodes."""
    directory = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        with tarfile.open(fileobj=req.body, mode="r|*") as archive:
            archive.extractall(directory, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise InvalidParameter(f"failed to read the build context: {exc}") from None
    return directory


def register(router: Router, daemon: Any) -> None:
    @router.route("POST", "/build")
    def build(req: Request) -> StreamResponse:
        from dockyard.build.builder import Builder, BuildOptions
        from dockyard.daemon.distribution import DistributionService
        from dockyard.image.reference import parse_docker_ref

        if req.arg("version") == "2":
            raise InvalidParameter("BuildKit is not supported by this daemon: use the classic builder")
        if req.arg("remote"):
            raise InvalidParameter("building from a remote context is not supported; send the context as a tar")
        tags = req.query.get("t") or []
        for tag in tags:
            parse_docker_ref(tag)  # a bad tag fails before any step runs, with docker's message
        options = BuildOptions(
            dockerfile=req.arg("dockerfile") or "Dockerfile",
            tags=tags,
            build_args=req.json_arg("buildargs"),
            no_cache=req.flag("nocache"),
            target=req.arg("target") or "",
            remove=req.flag("rm", True),
            force_remove=req.flag("forcerm"),
            labels=req.json_arg("labels"),
            network_mode=req.arg("networkmode") or "",
            pull=req.flag("pull"),
        )
        tmp = daemon.data_root / "tmp"
        tmp.mkdir(exist_ok=True, mode=0o700)
        context = _extract_context(req, tmp)
        quiet = req.flag("q")

        def job(emit: Any) -> None:
            def shown(message: dict[str, Any]) -> None:
                if not quiet or "stream" not in message:
                    emit(message)

            try:
                image_id = Builder(daemon, shown).build(context, options)
                if quiet:
                    emit({"stream": image_id + "\n"})
            finally:
                shutil.rmtree(context, ignore_errors=True)

        return StreamResponse(DistributionService.stream(job))
