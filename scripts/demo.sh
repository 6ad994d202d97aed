#!/usr/bin/env bash
# The main demo: daemon up, a busybox base image made locally and imported, containers run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
work=$(mktemp -d /tmp/dockyard-demo.XXXXXX)
export DOCKYARD_HOST="unix://$work/dockyard.sock"
cleanup() {
  dockyard rm -f demo-sleeper >/dev/null 2>&1 || true
  [ -n "${daemon_pid:-}" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "== starting dockyard daemon (data root $work/data)"
dockyard daemon --data-root "$work/data" --exec-root "$work/run" -H "$DOCKYARD_HOST" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do dockyard version >/dev/null 2>&1 && break; sleep 0.1; done

echo "== building a busybox root filesystem from Debian's busybox-static and importing it"
.venv/bin/python -c "import sys; sys.path.insert(0, 'tests'); from helpers.rootfs import busybox_rootfs_tar; busybox_rootfs_tar('$work/busybox.tar', '$work/build')"
dockyard import --change 'CMD ["sh"]' "$work/busybox.tar" busybox:latest
dockyard images

echo "== dockyard run --rm busybox echo hello from a container"
dockyard run --rm busybox echo hello from a container

echo "== a detached container: ps, logs, inspect"
dockyard run -d --name demo-sleeper busybox sh -c 'echo started; while true; do sleep 1; done'
sleep 0.5
dockyard ps
dockyard logs demo-sleeper
dockyard inspect -f '{{.State.Status}} pid={{.State.Pid}} hostname={{.Config.Hostname}}' demo-sleeper
dockyard stop -t 1 demo-sleeper
dockyard ps -a

echo "== dockyard build: an image from a Dockerfile on top of busybox"
mkdir -p "$work/app"
printf 'FROM busybox\nRUN echo "built by dockyard" > /message\nCMD ["cat", "/message"]\n' > "$work/app/Dockerfile"
dockyard build -t demo-app "$work/app"
dockyard run --rm demo-app
