"""The classic Docker builder (`POST /build` without BuildKit): a Dockerfile run step by step.

Every instruction makes an image on top of the previous one, as moby's classic builder does:
RUN runs a container from the current image and commits its diff; COPY/ADD copy into a created
(never started) container's mounted root and commit it; the other instructions change the config
only (an empty-layer image). Each step is looked up in the build cache first: an image whose parent
is the current image and whose last history entry records the same step (COPY/ADD name the hash of
what they copy), with the config the step would produce. Multi-stage builds, `--target`, build args,
SHELL, ONBUILD triggers and .dockerignore (applied by the client, as docker's CLI does) work.
Output goes to `emit` as docker's JSON progress messages ({"stream": ...}, {"aux": {"ID": ...}}).
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.build import dockerfile as df
from dockyard.build.changes import parse_healthcheck
from dockyard.errors import DockyardError, InvalidParameter, NotFound

Emit = Callable[[dict[str, Any]], None]
DEFAULT_SHELL = ["/bin/sh", "-c"]
NOP = "/bin/sh -c #(nop) "
# Build args docker knows without an ARG line (proxies); they never end up in the image.
BUILTIN_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}  # fmt: skip
METADATA = {"ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "USER", "VOLUME", "STOPSIGNAL", "HEALTHCHECK",
            "SHELL", "ONBUILD", "MAINTAINER", "ARG"}  # fmt: skip


class BuildError(DockyardError):
    """A step failed; the message is docker's (e.g. "The command '/bin/sh -c false' returned a non-zero code: 1")."""


class BuildOptions:
    def __init__(
        self,
        dockerfile: str = "Dockerfile",
        tags: list[str] | None = None,
        build_args: dict[str, str | None] | None = None,
        no_cache: bool = False,
        target: str = "",
        remove: bool = True,
        force_remove: bool = False,
        labels: dict[str, str] | None = None,
        network_mode: str = "",
        pull: bool = False,
    ) -> None:
        self.dockerfile = dockerfile or "Dockerfile"
        self.tags = list(tags or [])
        self.build_args = dict(build_args or {})
        self.no_cache = no_cache
        self.target = target
        self.remove = remove
        self.force_remove = force_remove
        self.labels = dict(labels or {})
        self.network_mode = network_mode
        self.pull = pull


class _Stage:
    """Where one stage is: its current image (None: scratch), its build args, its position."""

    def __init__(self, name: str | None, index: int) -> None:
        self.name = name
        self.index = index
        self.image: Any = None
        self.config: dict[str, Any] = {}
        self.args: dict[str, str] = {}
        self.cmd_set = False


class Builder:
    def __init__(self, daemon: Any, emit: Emit) -> None:
        self.daemon = daemon
        self.store = daemon.images
        self.containers = daemon.containers
        self.emit = emit

    # ------------------------------------------------------------------ entry
    def build(self, context: Path, options: BuildOptions) -> str:
        """Build the Dockerfile in `context`; returns the image id (tags applied)."""
        self.context = context.resolve()
        self.options = options
        path = self._context_path(options.dockerfile)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise InvalidParameter(f"Cannot locate specified Dockerfile: {options.dockerfile}") from None
        try:
            instructions = df.parse(text, options.dockerfile)
        except df.DockerfileError as exc:
            raise BuildError(str(exc)) from None
        global_args, stage_lists = df.stages(instructions)
        if options.target:
            names = [df.from_parts(s[0])[1] for s in stage_lists]
            if options.target.lower() not in names:
                raise InvalidParameter(f"failed to reach build target {options.target} in Dockerfile")
            stage_lists = stage_lists[: names.index(options.target.lower()) + 1]
        self.stages: list[_Stage] = []
        self.step = 0
        self.total = len(global_args) + sum(len(s) for s in stage_lists)  # docker counts the global ARGs
        self.used_args: set[str] = set()
        self.meta_args = self._global_args(global_args)
        for index, instrs in enumerate(stage_lists):
            stage = _Stage(df.from_parts(instrs[0])[1], index)
            self.stages.append(stage)
            for instr in instrs:
                self._dispatch(stage, instr)
        final = self.stages[-1]
        if final.image is None:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        if options.labels:
            final.image = self._commit_config(final, {**final.config, "Labels": {
                **(final.config.get("Labels") or {}), **options.labels}}, "LABEL " + " ".join(
                f"{k}={v}" for k, v in options.labels.items()))  # fmt: skip
        unused = [a for a in options.build_args if a not in self.used_args and a not in BUILTIN_ARGS]
        if unused:
            self._say(f"[Warning] One or more build-args {unused} were not consumed\n".replace("'", ""))
        image_id = final.image.id
        self.emit({"aux": {"ID": image_id}})
        self._say(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
        from dockyard.image.reference import familiar_string, parse_docker_ref

        for tag in options.tags:
            ref = parse_docker_ref(tag)
            self.daemon.image_service.tag(image_id, ref.name, ref.tag or "latest")
            self._say(f"Successfully tagged {familiar_string(str(ref))}\n")
        return image_id

    def _global_args(self, instrs: list[df.Instruction]) -> dict[str, str]:
        values: dict[str, str] = {}
        for instr in instrs:
            self.step += 1
            self._say(f"Step {self.step}/{self.total} : {instr.original}\n")
            for name, default in df.arg_pairs(instr.args, instr.escape, env=values):
                values[name] = self._arg_value(name, default)
        return values

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self, stage: _Stage, instr: df.Instruction) -> None:
        self.step += 1
        self._say(f"Step {self.step}/{self.total} : {instr.original}\n")
        handler = getattr(self, "_do_" + instr.keyword.lower(), None)
        if handler is None:
            raise BuildError(f"dockerfile parse error on line {instr.line}: unknown instruction: {instr.keyword}")
        _check_flags(instr)
        handler(stage, instr)
        if stage.image is not None:
            self._say(f" ---> {stage.image.id.removeprefix('sha256:')[:12]}\n")

    def _env(self, stage: _Stage) -> dict[str, str]:
        """What `$VAR` means in this stage: its build args, then its config's Env (which wins)."""
        env = dict(stage.args)
        for entry in stage.config.get("Env") or []:
            key, _, value = entry.partition("=")
            env[key] = value
        return env

    def _word(self, stage: _Stage, instr: df.Instruction, text: str) -> str:
        """One word with variables substituted and quotes removed (WORKDIR, USER, flag values...)."""
        return df.expand_word(text, self._env(stage), instr.escape)

    def _words(self, stage: _Stage, instr: df.Instruction) -> list[str]:
        return df.split_words(instr.args, instr.escape, env=self._env(stage))

    # ------------------------------------------------------------------ FROM
    def _do_from(self, stage: _Stage, instr: df.Instruction) -> None:
        image_ref, _name = df.from_parts(instr)
        image_ref = df.expand_word(image_ref, self.meta_args, instr.escape)
        stage.args = {}
        earlier = next((s for s in self.stages[:-1] if s.name and s.name == image_ref.lower()), None)
        if earlier is None and image_ref.isdigit() and int(image_ref) < len(self.stages) - 1:
            earlier = self.stages[int(image_ref)]
        if earlier is not None:
            stage.image, stage.config = earlier.image, copy.deepcopy(earlier.config)
        elif image_ref.lower() == "scratch":
            stage.image, stage.config = None, {}
        else:
            stage.image = self._base_image(image_ref)
            stage.config = copy.deepcopy(_runtime_config(stage.image))
        triggers = list(stage.config.get("OnBuild") or [])
        if triggers:
            stage.config["OnBuild"] = None
            self._say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            for trigger in df.parse("FROM scratch\n" + "\n".join(triggers))[1:]:
                handler = getattr(self, "_do_" + trigger.keyword.lower(), None)
                if handler is None or trigger.keyword in ("FROM", "ONBUILD", "MAINTAINER"):
                    raise BuildError(f"{trigger.keyword} isn't allowed as an ONBUILD trigger")
                handler(stage, trigger)

    def _base_image(self, ref: str) -> Any:
        try:
            if not self.options.pull:
                return self.store.resolve(ref)
        except NotFound:
            pass
        from dockyard.image.reference import parse_docker_ref

        reference = parse_docker_ref(ref)
        self.daemon.distribution.pull(reference, None, self.emit)
        return self.store.resolve(ref)

    # ------------------------------------------------------------------ config-only steps
    def _metadata(self, stage: _Stage, config: dict[str, Any], created_by: str) -> None:
        """Commit a config change as an empty-layer image (from the cache when it is there)."""
        if stage.image is None and not config:
            stage.config = config
            return
        stage.image = self._commit_config(stage, config, created_by)
        stage.config = config

    def _commit_config(self, stage: _Stage, config: dict[str, Any], step: str) -> Any:
        created_by = NOP + step
        cached = self._cached(stage, created_by, config)
        if cached is not None:
            return cached
        return self.store.create_image(config, stage.image, None, created_by=created_by)

    def _do_env(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        env = list(config.get("Env") or [])
        shown = []
        for key, value in df.key_values(instr.args, "ENV", instr.escape, env=self._env(stage)):
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            config["Env"] = env
            shown.append(f"{key}={value}")
        self._metadata(stage, config, " ENV " + " ".join(shown))

    def _do_label(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        pairs = df.key_values(instr.args, "LABEL", instr.escape, env=self._env(stage))
        config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
        self._metadata(stage, config, " LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    def _do_maintainer(self, stage: _Stage, instr: df.Instruction) -> None:
        self._metadata(stage, copy.deepcopy(stage.config), " MAINTAINER " + instr.args)

    def _command(self, stage: _Stage, instr: df.Instruction) -> list[str]:
        if instr.json_args is not None:
            return list(instr.json_args)
        return [*(stage.config.get("Shell") or DEFAULT_SHELL), instr.args]

    def _do_cmd(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        config["Cmd"] = self._command(stage, instr)
        stage.cmd_set = True
        self._metadata(stage, config, f" CMD {json.dumps(config['Cmd'])}")

    def _do_entrypoint(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        config["Entrypoint"] = self._command(stage, instr) if instr.args else None
        if not stage.cmd_set:  # docker: an ENTRYPOINT drops the CMD inherited from the base image
            config["Cmd"] = None
        self._metadata(stage, config, f" ENTRYPOINT {json.dumps(config['Entrypoint'])}")

    def _do_shell(self, stage: _Stage, instr: df.Instruction) -> None:
        if not instr.json_args:
            raise BuildError("SHELL requires the arguments to be in JSON form")
        config = copy.deepcopy(stage.config)
        config["Shell"] = list(instr.json_args)
        self._metadata(stage, config, f" SHELL {json.dumps(config['Shell'])}")

    def _do_expose(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        ports = dict(config.get("ExposedPorts") or {})
        added = []
        for port in self._words(stage, instr):
            key = port if "/" in port else f"{port}/tcp"
            ports[key] = {}
            added.append(key)
        config["ExposedPorts"] = ports
        self._metadata(stage, config, " EXPOSE " + " ".join(added))

    def _do_user(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        config["User"] = self._word(stage, instr, instr.args)
        self._metadata(stage, config, " USER " + config["User"])

    def _do_volume(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        paths = instr.json_args or self._words(stage, instr)
        if not paths or any(not p for p in paths):
            raise BuildError("VOLUME specified can not be an empty string")
        config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
        self._metadata(stage, config, f" VOLUME {json.dumps(paths)}")

    def _do_stopsignal(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        config["StopSignal"] = self._word(stage, instr, instr.args)
        self._metadata(stage, config, " STOPSIGNAL " + config["StopSignal"])

    def _do_healthcheck(self, stage: _Stage, instr: df.Instruction) -> None:
        config = copy.deepcopy(stage.config)
        flags = " ".join(f"--{k}={v}" for k, v in instr.flags.items())
        config["Healthcheck"] = parse_healthcheck(f"{flags} {instr.args}".strip())
        self._metadata(stage, config, f" HEALTHCHECK {json.dumps(config['Healthcheck'], sort_keys=True)}")

    def _do_onbuild(self, stage: _Stage, instr: df.Instruction) -> None:
        trigger = instr.args.strip()
        keyword = trigger.split(None, 1)[0].upper() if trigger else ""
        if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise BuildError(f"{keyword} isn't allowed as an ONBUILD trigger")
        config = copy.deepcopy(stage.config)
        config["OnBuild"] = [*(config.get("OnBuild") or []), trigger]
        self._metadata(stage, config, " ONBUILD " + trigger)

    def _do_arg(self, stage: _Stage, instr: df.Instruction) -> None:
        shown = []
        for name, default in df.arg_pairs(instr.args, instr.escape, env=self._env(stage)):
            value = self._arg_value(name, default if default is not None else self.meta_args.get(name))
            if value is not None:
                stage.args[name] = value
            shown.append(name if default is None else f"{name}={default}")
        self._metadata(stage, copy.deepcopy(stage.config), " ARG " + " ".join(shown))

    def _arg_value(self, name: str, default: str | None) -> str | None:
        """A --build-arg value wins over the ARG default; null (unset on the client) keeps the default."""
        self.used_args.add(name)
        given = self.options.build_args.get(name)
        return given if given is not None else default

    # ------------------------------------------------------------------ WORKDIR
    def _do_workdir(self, stage: _Stage, instr: df.Instruction) -> None:
        path = self._word(stage, instr, instr.args)
        if not path.startswith("/"):
            path = os.path.join(stage.config.get("WorkingDir") or "/", path)
        config = copy.deepcopy(stage.config)
        config["WorkingDir"] = os.path.normpath(path)
        created_by = NOP + " WORKDIR " + config["WorkingDir"]
        cached = self._cached(stage, created_by, config)
        if cached is not None:
            stage.image, stage.config = cached, config
            return

        def make(rootfs: str) -> None:
            from dockyard.runtime.user import resolve_in_root

            os.makedirs(resolve_in_root(rootfs, config["WorkingDir"]), exist_ok=True)

        self._commit_change(stage, config, created_by, make)

    # ------------------------------------------------------------------ RUN
    def _do_run(self, stage: _Stage, instr: df.Instruction) -> None:
        if stage.image is None:
            raise BuildError("no such file or directory: a scratch image has no shell to RUN in")
        command = self._command(stage, instr)
        args = {k: v for k, v in stage.args.items() if k not in _env_keys(stage.config)}
        created_by = " ".join(command)
        if args:  # docker records the build args a RUN saw, so a different value misses the cache
            created_by = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in sorted(args.items())) + " " + created_by
        cached = self._cached(stage, created_by, stage.config)
        if cached is not None:
            stage.image = cached
            return
        body = {
            "Image": stage.image.id,
            "Cmd": command,
            "Entrypoint": [""],
            "Env": [f"{k}={v}" for k, v in args.items()],
            "Labels": {},
            "HostConfig": {"NetworkMode": self.options.network_mode or "default"},
        }
        c = self.containers.create(body, None)
        self._say(f" ---> Running in {c.id[:12]}\n")
        try:
            self.containers.start(c.id)
            _, output = self.containers.logs(c.id, stdout=True, stderr=True, follow=True, since=0, until=None,
                                             tail=None, timestamps=False)  # fmt: skip
            for _stream, data in output:
                self.emit({"stream": data.decode(errors="replace")})
            code = self._exit_code(c)
            if code != 0:
                raise BuildError(f"The command '{' '.join(command)}' returned a non-zero code: {code}")
            stage.image = self._commit_container(c, stage, created_by)
        except BaseException:
            if self.options.force_remove:
                self._remove(c)
            raise
        if self.options.remove or self.options.force_remove:
            self._remove(c)

    def _exit_code(self, c: Any) -> int:
        wait = self.containers.wait(c.id, "not-running")
        return int((wait() or {}).get("StatusCode", 0))

    def _remove(self, c: Any) -> None:
        self._say(f"Removing intermediate container {c.id[:12]}\n")
        self.containers.remove(c.id, force=True)

    # ------------------------------------------------------------------ COPY / ADD
    def _do_copy(self, stage: _Stage, instr: df.Instruction) -> None:
        self._copy(stage, instr, extract=False)

    def _do_add(self, stage: _Stage, instr: df.Instruction) -> None:
        self._copy(stage, instr, extract=True)

    def _copy(self, stage: _Stage, instr: df.Instruction, extract: bool) -> None:
        if instr.json_args is not None:
            words = [self._word(stage, instr, w) for w in instr.json_args]
        else:
            words = self._words(stage, instr)
        if len(words) < 2:
            raise BuildError(f"{instr.keyword} requires at least two arguments, but only one was provided. "
                             f"Destination could not be determined.")  # fmt: skip
        *sources, dest = words
        urls = [s for s in sources if s.startswith(("http://", "https://"))]
        if urls and not extract:
            raise BuildError(f"source can't be a URL for {instr.keyword}")
        root, from_image = self._copy_root(stage, instr)
        downloads = tempfile.mkdtemp(prefix="add-", dir=self.context.parent) if urls else ""
        downloaded: set[str] = set()
        try:
            files: list[str] = []
            for source in sources:
                if source in urls:
                    path = _download(source, downloads)
                    downloaded.add(path)
                    files.append(path)
                else:
                    files += self._sources(root, source, from_image is not None)
            if (len(files) > 1 or len(sources) > 1) and not dest.endswith("/"):
                raise BuildError(f"When using {instr.keyword} with more than one source file, "
                                 "the destination must be a directory and end with a /")  # fmt: skip
            workdir = stage.config.get("WorkingDir") or "/"
            target = dest if dest.startswith("/") else os.path.join(workdir, dest)
            if dest.endswith("/") or dest in (".", "./"):
                target = target.rstrip("/") + "/"
            digest = _content_hash(files)
            kind = "dir" if any(os.path.isdir(f) for f in files) else "file"
            created_by = f"{NOP}{instr.keyword} {kind}:{digest} in {target} "
            chown = self._word(stage, instr, instr.flags["chown"]) if instr.flags.get("chown") else ""
            if chown:
                created_by += f"--chown={chown} "
            cached = self._cached(stage, created_by, stage.config)
            if cached is not None:
                stage.image = cached
                return

            def place(rootfs: str) -> None:
                owner = _owner(rootfs, chown) if chown else None
                for source in files:
                    unpack = extract and source not in downloaded and _is_archive(source)
                    _copy_into(rootfs, source, target, unpack, owner)  # a downloaded archive stays whole

            config = copy.deepcopy(stage.config)
            self._commit_change(stage, config, created_by, place)
        finally:
            if from_image is not None:
                self._release_copy_root(from_image)
            if downloads:
                shutil.rmtree(downloads, ignore_errors=True)

    def _copy_root(self, stage: _Stage, instr: df.Instruction) -> tuple[str, Any]:
        """The context directory, or for --from the mounted root of a stage's or an image's filesystem."""
        source = self._word(stage, instr, instr.flags["from"]) if instr.flags.get("from") else ""
        if not source:
            return str(self.context), None
        earlier = next((s for s in self.stages[:-1] if s.name == source.lower()), None)
        if earlier is None and source.isdigit() and int(source) < len(self.stages) - 1:
            earlier = self.stages[int(source)]
        image = earlier.image if earlier is not None else self._base_image(source)
        if image is None:
            raise BuildError(f"COPY --from={source}: the stage has no filesystem (FROM scratch, nothing added)")
        c = self.containers.create({"Image": image.id, "Cmd": ["true"], "Entrypoint": [""], "Labels": {}}, None)
        return self.containers.mount_rootfs(c), c

    def _release_copy_root(self, c: Any) -> None:
        self.containers.remove(c.id, force=True)

    def _sources(self, root: str, source: str, from_image: bool) -> list[str]:
        """Host paths of a COPY source inside `root` (wildcards allowed); never outside it."""
        clean = os.path.normpath("/" + source).lstrip("/")
        if not from_image and os.path.normpath(source).startswith(".."):
            raise BuildError(f"Forbidden path outside the build context: {source} ()")
        if any(ch in clean for ch in "*?["):
            directory, pattern = os.path.split(clean)
            base = os.path.join(root, directory)
            names = sorted(n for n in (os.listdir(base) if os.path.isdir(base) else []) if fnmatch.fnmatch(n, pattern))
            found = [os.path.join(base, n) for n in names]
            if not found:
                raise BuildError("COPY failed: no source files were specified")
            return found
        from dockyard.runtime.user import resolve_in_root

        path = resolve_in_root(root, clean) if clean else root
        if not os.path.lexists(path):
            raise BuildError(f"COPY failed: file not found in build context or excluded by .dockerignore: "
                             f"stat {source}: file does not exist")  # fmt: skip
        return [path]

    # ------------------------------------------------------------------ committing filesystem changes
    def _commit_change(
        self, stage: _Stage, config: dict[str, Any], created_by: str, change: Callable[[str], None]
    ) -> None:
        """Apply `change` to the mounted root of a container made from the current image, then commit."""
        base = stage.image
        if base is None:  # FROM scratch: an empty image to start from
            base = self.store.create_image(stage.config, None, None, created_by=NOP + " FROM scratch")
        c = self.containers.create({"Image": base.id, "Cmd": ["true"], "Entrypoint": [""], "Labels": {}}, None)
        try:
            change(self.containers.mount_rootfs(c))
            stage.image = self._commit_container(c, stage, created_by, config=config, parent=base)
        finally:
            self.containers.remove(c.id, force=True)
        stage.config = config

    def _commit_container(
        self, c: Any, stage: _Stage, created_by: str, config: dict[str, Any] | None = None, parent: Any = None
    ) -> Any:
        with tempfile.TemporaryFile(dir=self.store.root) as diff:
            self.containers.snapshotter.write_diff(c.id, diff)
            diff.seek(0)
            return self.store.create_image(
                config if config is not None else stage.config, parent or stage.image, diff, created_by=created_by
            )

    # ------------------------------------------------------------------ cache
    def _cached(self, stage: _Stage, created_by: str, config: dict[str, Any]) -> Any:
        if self.options.no_cache or stage.image is None:
            return None
        for child_id in self.store.children(stage.image.id):
            child = self.store.get(child_id)
            history = child.config.get("history") or []
            if history and history[-1].get("created_by") == created_by and _runtime_config(child) == config:
                self._say(" ---> Using cache\n")
                return child
        return None

    # ------------------------------------------------------------------ helpers
    def _context_path(self, name: str) -> str:
        from dockyard.runtime.user import resolve_in_root

        return resolve_in_root(str(self.context), name)

    def _say(self, text: str) -> None:
        self.emit({"stream": text})


# The flags the classic builder takes; BuildKit-only ones get docker's pointer to BuildKit.
_FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown"}, "ADD": {"chown"},
          "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"}}  # fmt: skip
_BUILDKIT_FLAGS = {"mount", "network", "security", "chmod", "link", "checksum", "keep-git-dir", "parents", "exclude"}


def _check_flags(instr: df.Instruction) -> None:
    for name in instr.flags:
        if name in _FLAGS.get(instr.keyword, set()):
            continue
        if name in _BUILDKIT_FLAGS:
            raise BuildError(f"the --{name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                             "to learn how to build images with BuildKit enabled")  # fmt: skip
        raise BuildError(f"Unknown flag: {name}")


def _runtime_config(image: Any) -> dict[str, Any]:
    return dict((image.config.get("config") or image.config.get("Config") or {}) if image is not None else {})


def _env_keys(config: dict[str, Any]) -> set[str]:
    return {e.partition("=")[0] for e in config.get("Env") or []}


def _content_hash(paths: list[str]) -> str:
    """What a COPY copies, as one digest (names, modes, contents): a change anywhere misses the cache."""
    digest = hashlib.sha256()
    for top in paths:
        walk = [(top, "")] if not os.path.isdir(top) else [
            (os.path.join(d, n), os.path.relpath(os.path.join(d, n), top))
            for d, dirs, files in sorted(os.walk(top)) for n in sorted(dirs + files)
        ]  # fmt: skip
        for path, rel in walk:
            st = os.lstat(path)
            digest.update(f"{rel}\0{st.st_mode}\0".encode())
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                        digest.update(chunk)
            elif stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
    return digest.hexdigest()


def _download(url: str, directory: str) -> str:
    """ADD <url>: fetch it (mode 0600, named after the URL's last path segment, as docker does)."""
    import urllib.parse
    import urllib.request

    name = os.path.basename(urllib.parse.urlsplit(url).path) or "download"
    path = os.path.join(directory, name)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        raise BuildError(f"failed to GET {url}: {exc}") from None
    os.chmod(path, 0o600)
    return path


def _is_archive(path: str) -> bool:
    return os.path.isfile(path) and tarfile.is_tarfile(path)


def _owner(rootfs: str, chown: str) -> tuple[int, int]:
    from dockyard.runtime.user import resolve_user

    user = resolve_user(rootfs, chown)
    return user.uid, user.gid


def _copy_into(rootfs: str, source: str, target: str, extract: bool, owner: tuple[int, int] | None) -> None:
    """docker's COPY/ADD rules: a directory's contents go into the target; a file goes to target, or
    into it when it ends with "/" or is a directory; ADD unpacks local tar archives into the target."""
    from dockyard.runtime.user import resolve_in_root

    into_dir = target.endswith("/")
    dest = resolve_in_root(rootfs, target)
    if extract:
        os.makedirs(dest, exist_ok=True)
        with tarfile.open(source) as archive:
            archive.extractall(dest, filter="data")  # no escaping paths, links or device nodes
        _chown_tree(dest, owner)
        return
    if os.path.isdir(source) and not os.path.islink(source):
        os.makedirs(dest, exist_ok=True)
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True, copy_function=shutil.copy2)
        _chown_tree(dest, owner)
        return
    if into_dir or os.path.isdir(dest):
        os.makedirs(dest, exist_ok=True)
        dest = resolve_in_root(rootfs, os.path.join(target, os.path.basename(source)))
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest) and os.path.isdir(dest) and not os.path.islink(dest):
        raise BuildError(f"cannot overwrite directory {target} with a file")
    if os.path.islink(source):
        if os.path.lexists(dest):
            os.unlink(dest)
        os.symlink(os.readlink(source), dest)
    else:
        shutil.copy2(source, dest, follow_symlinks=False)
    if owner:
        os.lchown(dest, *owner)


def _chown_tree(path: str, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    os.lchown(path, *owner)
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), *owner)
