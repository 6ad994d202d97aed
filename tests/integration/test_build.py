"""`dockyard build` and `docker build` (classic builder) against a real daemon: every instruction, the
build cache, .dockerignore, multi-stage builds with --target, failures, and what the image runs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

DOCKER = "/usr/local/bin/docker"

DOCKERFILE = """\
# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE}
ARG GREETING=hello
ENV APP_DIR=/app \\
    MODE=prod
WORKDIR $APP_DIR
COPY hello.txt ./
COPY conf/ /etc/demo/
ADD bundle.tar /opt/bundle/
RUN echo "$GREETING from $MODE" > /app/greeting && mkdir -p /home/worker \\
    && echo 'worker:x:1234:1234::/home/worker:/bin/sh' >> /etc/passwd && echo 'worker:x:1234:' >> /etc/group
COPY --chown=worker:worker hello.txt /home/worker/mine.txt
LABEL org.example.role=demo version="1.0"
EXPOSE 8080 53/udp
VOLUME /data
HEALTHCHECK --interval=30s --retries=2 CMD ["test", "-f", "/app/greeting"]
STOPSIGNAL SIGINT
USER worker
ENTRYPOINT ["sh", "-c"]
CMD ["cat /app/greeting /app/hello.txt"]
"""


def _tag() -> str:
    return f"built-{uuid.uuid4().hex[:10]}:1"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "conf").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hi there\n")
    (ctx / "conf" / "a.conf").write_text("a=1\n")
    (ctx / "secret.key").write_text("do not send\n")
    (ctx / ".dockerignore").write_text("# comment\n*.key\n")
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("inner/file.txt")
        payload = b"from the tar\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (ctx / "bundle.tar").write_bytes(data.getvalue())
    return ctx


@pytest.fixture
def images(dy):
    made: list[str] = []
    yield made
    for ref in made:
        for cid in dy.out("ps", "-aq", "--filter", f"ancestor={ref}").split():
            dy.cli("rm", "-f", cid)
        dy.cli("rmi", "-f", ref)


def test_build_runs_every_instruction_and_the_cache_hits(dy, context, images) -> None:
    tag = _tag()
    images.append(tag)
    first = dy.cli("build", "-t", tag, "--build-arg", "GREETING=howdy", str(context), timeout=180)
    assert first.returncode == 0, first.stdout.decode() + first.stderr.decode()
    log = first.stdout.decode()
    assert "Step 1/18 : ARG BASE=busybox" in log and "Successfully built" in log and f"Successfully tagged {tag}" in log
    assert " ---> Running in " in log and "Removing intermediate container" in log

    out = dy.out("run", "--rm", tag)
    assert out == "howdy from prod\nhi there\n"
    check = "cat /etc/demo/a.conf /opt/bundle/inner/file.txt; stat -c %u /home/worker/mine.txt; id -u; pwd"
    assert dy.out("run", "--rm", tag, check).split("\n")[:5] == ["a=1", "from the tar", "1234", "1234", "/app"]
    assert dy.cli("run", "--rm", tag, "ls /app/secret.key").returncode != 0  # .dockerignore'd
    parent = dy.out("image", "inspect", "-f", "{{.Parent}}", tag).strip()  # the CMD step's parent: a build step
    assert parent and parent in dy.out("images", "-aq", "--no-trunc")  # only -a lists intermediate images
    assert parent not in dy.out("images", "-q", "--no-trunc")

    config = json.loads(dy.out("image", "inspect", "-f", "{{json .Config}}", tag))
    assert config["Env"][-2:] == ["APP_DIR=/app", "MODE=prod"] and config["WorkingDir"] == "/app"
    assert config["Labels"] == {"org.example.role": "demo", "version": "1.0"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}} and config["Volumes"] == {"/data": {}}
    assert config["Healthcheck"]["Test"] == ["CMD", "test", "-f", "/app/greeting"]
    assert config["StopSignal"] == "SIGINT" and config["User"] == "worker"
    assert config["Entrypoint"] == ["sh", "-c"] and config["Cmd"] == ["cat /app/greeting /app/hello.txt"]

    again = dy.cli("build", "-t", tag, "--build-arg", "GREETING=howdy", str(context), timeout=180)
    assert again.returncode == 0 and again.stdout.decode().count("Using cache") == 16  # every step after FROM
    assert f"Successfully built {_image_id(dy, tag)[7:19]}" in again.stdout.decode()

    (context / "hello.txt").write_text("changed\n")
    changed = dy.cli("build", "-t", tag, "--build-arg", "GREETING=howdy", str(context), timeout=180).stdout.decode()
    assert changed.count("Using cache") == 3  # ARG, ENV, WORKDIR: up to the COPY that changed
    assert dy.out("run", "--rm", tag).endswith("changed\n")
    fresh = dy.cli("build", "--no-cache", "-q", "-t", tag, "--build-arg", "GREETING=howdy", str(context), timeout=180)
    assert fresh.returncode == 0 and "Using cache" not in fresh.stdout.decode()
    assert fresh.stdout.decode().strip() == _image_id(dy, tag)  # -q prints only the id


def _image_id(dy, ref: str) -> str:  # type: ignore[no-untyped-def]
    return dy.out("image", "inspect", "-f", "{{.Id}}", ref).strip()


def test_multi_stage_copy_from_and_target(dy, tmp_path, images) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "ms"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox AS builder\nRUN mkdir /out && echo artifact > /out/result\n"
        "FROM busybox AS tester\nRUN echo tested > /tested\n"
        "FROM scratch\nCOPY --from=builder /out/result /result\nCOPY --from=builder /bin/busybox /bin/busybox\n"
        'CMD ["/bin/busybox", "cat", "/result"]\n'
    )
    final, tester = _tag(), _tag()
    images += [final, tester]
    assert dy.cli("build", "-t", final, str(ctx), timeout=180).returncode == 0
    assert dy.out("run", "--rm", final) == "artifact\n"
    layers = json.loads(dy.out("image", "inspect", "-f", "{{json .RootFS.Layers}}", final))
    assert len(layers) == 2  # FROM scratch: only its own two COPY layers
    target = dy.cli("build", "--target", "tester", "-t", tester, str(ctx), timeout=180)
    assert target.returncode == 0 and "COPY --from=builder" not in target.stdout.decode()
    assert dy.out("run", "--rm", tester, "cat", "/tested") == "tested\n"
    bad = dy.cli("build", "--target", "nope", str(ctx))
    assert bad.returncode != 0 and b"failed to reach build target nope in Dockerfile" in bad.stderr


def test_failures_say_what_docker_says_and_leave_nothing(dy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = tmp_path / "bad"
    ctx.mkdir()
    before = set(dy.out("ps", "-aq").split())
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo partial && exit 3\n")
    out = dy.cli("build", "--force-rm", str(ctx), timeout=120)
    assert out.returncode == 1
    assert b"The command '/bin/sh -c echo partial && exit 3' returned a non-zero code: 3" in out.stderr
    assert b"partial" in out.stdout
    assert set(dy.out("ps", "-aq").split()) == before  # --force-rm: even the failed step's container goes
    assert dy.cli("build", str(ctx), timeout=120).returncode == 1
    assert len(set(dy.out("ps", "-aq").split()) - before) == 1  # --rm alone keeps it for a look, as docker
    for dockerfile, message in [
        ("FROM busybox\nCOPY ../outside /x\n", b"Forbidden path outside the build context"),
        ("FROM busybox\nCOPY missing.txt /x\n", b"missing.txt"),
        ("FROM busybox\nFROBNICATE now\n", b"unknown instruction"),
        ("FROM busybox\nRUN --mount=type=cache,target=/x true\n", b"requires BuildKit"),
    ]:
        (ctx / "Dockerfile").write_text(dockerfile)
        out = dy.cli("build", str(ctx), timeout=120)
        assert out.returncode != 0 and message in out.stderr, (dockerfile, out.stderr)


@pytest.mark.skipif(not os.path.exists(DOCKER), reason="the docker CLI is not installed")
def test_docker_cli_builds_with_the_classic_builder(dy, context, images, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tag = _tag()
    images.append(tag)
    # No DOCKER_BUILDKIT=0 needed: /_ping says Builder-Version 1, so the CLI picks the classic builder.
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_BUILDKIT"}
    env.update(DOCKER_HOST=dy.host, DOCKER_CONFIG=str(tmp_path / "cfg"))
    out = subprocess.run(
        [DOCKER, "build", "-t", tag, "--build-arg", "GREETING=yo", str(context)],
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert b"Successfully tagged" in out.stdout
    assert dy.out("run", "--rm", tag) == "yo from prod\nhi there\n"


def test_docker_sdk_builds(dy, tmp_path, images) -> None:  # type: ignore[no-untyped-def]
    docker = pytest.importorskip("docker")
    ctx = tmp_path / "sdk"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text('FROM busybox\nARG WHO\nRUN echo "made by $WHO" > /x\nCMD ["cat", "/x"]\n')
    tag = _tag()
    images.append(tag)
    client = docker.DockerClient(base_url=dy.host, version="auto")
    image, logs = client.images.build(path=str(ctx), tag=tag, buildargs={"WHO": "sdk"}, rm=True)
    assert tag in image.tags and any("Successfully built" in entry.get("stream", "") for entry in logs)
    assert client.containers.run(tag, remove=True) == b"made by sdk\n"
    with pytest.raises(docker.errors.BuildError, match="returned a non-zero code: 1"):
        (ctx / "Dockerfile").write_text("FROM busybox\nRUN false\n")
        client.images.build(path=str(ctx), forcerm=True)


def test_add_from_a_url_on_loopback(dy, tmp_path, images) -> None:  # type: ignore[no-untyped-def]
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    (served / "tool.sh").write_text("echo fetched\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tool.sh"
        ctx = tmp_path / "url"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f'FROM busybox\nADD {url} /opt/\nCMD ["sh", "/opt/tool.sh"]\n')
        tag = _tag()
        images.append(tag)
        out = dy.cli("build", "-t", tag, str(ctx), timeout=120)
        assert out.returncode == 0, out.stderr
        assert dy.out("run", "--rm", tag) == "fetched\n"
        assert dy.out("run", "--rm", tag, "stat", "-c", "%a", "/opt/tool.sh").strip() == "600"
        (ctx / "Dockerfile").write_text(f"FROM busybox\nCOPY {url} /opt/\n")
        refused = dy.cli("build", str(ctx), timeout=120)
        assert refused.returncode != 0 and b"source can't be a URL for COPY" in refused.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_build_from_stdin(dy, tmp_path, images) -> None:  # type: ignore[no-untyped-def]
    dockerfile = b'FROM busybox\nRUN echo from-stdin > /s\nCMD ["cat", "/s"]\n'
    tag = _tag()
    images.append(tag)
    assert dy.cli("build", "-q", "-t", tag, "-", input=dockerfile, timeout=120).returncode == 0
    assert dy.out("run", "--rm", tag) == "from-stdin\n"
    context = io.BytesIO()
    files = {"Dockerfile": b'FROM busybox\nCOPY note /note\nCMD ["cat", "/note"]\n', "note": b"tar\n"}
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert dy.cli("build", "-q", "-t", tag, "-", input=context.getvalue(), timeout=120).returncode == 0
    assert dy.out("run", "--rm", tag) == "tar\n"
