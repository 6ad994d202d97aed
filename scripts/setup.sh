#!/usr/bin/env bash
# Install everything dockyard and its tests need on a fresh Debian 12 machine (run as root):
# system packages (busybox-static for the base image, runc/crun as alternative runtimes, tini for
# `run --init`, skopeo, docker-compose and the docker CLI as real clients) and the virtualenv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(busybox-static runc crun tini iproute2 nftables iptables python3-venv skopeo docker-registry docker-compose)
missing=()
# The compatibility tests drive the real docker CLI; Debian's docker.io provides one (dockerd is not started).
command -v docker >/dev/null || packages+=(docker.io)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# Reinstall only when the declared dependencies changed (the package itself is editable).
stamp=.venv/.dockyard-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi
# Byte-compile the (editable) package as pip does for a regular install: every CLI start and every
# daemon start would otherwise compile it again where PYTHONDONTWRITEBYTECODE is set (~10 ms a command).
.venv/bin/python -m compileall -q src/dockyard >/dev/null
