"""Import budgets: what the CLI's hot verbs and the container monitors must not load.

For the CLI each heavy module costs 1-6 ms per command (typing, dataclasses via inspect, urllib.parse
with ipaddress, subprocess with locale, datetime, platform, http.client). For the monitors it costs
memory: every monitor is forked from the zygote and maps all it imported, once per container. A stray
top-level import would bring the cost back without any timing test noticing on a noisy machine.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("typing", "dataclasses", "inspect", "urllib.parse", "subprocess", "datetime", "platform", "http.client")

PROBE = """
import io, contextlib, json, sys
sys.argv = ["dockyard", *json.loads(sys.argv[1])]
from dockyard.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main()
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--rm", "busybox", "true"],
        ["exec", "c1", "true"],
        ["ps"],
        ["ps", "--format", "{{.Names}}"],
        ["images"],
        ["inspect", "c1"],
        ["logs", "c1"],
        ["version"],
        ["stop", "c1"],
    ],
)
def test_hot_verbs_stay_light(argv: list[str], tmp_path) -> None:
    env = {"DOCKYARD_HOST": f"unix://{tmp_path}/none.sock", "DOCKYARD_NO_AUTOSTART": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, env=env, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "dockyard.client.transport" in loaded  # the verb really went as far as talking to the daemon
    assert not loaded & set(HEAVY), f"dockyard {' '.join(argv)} imports {sorted(loaded & set(HEAVY))}"


MONITOR_HEAVY = (*HEAVY, "tempfile", "shutil", "pathlib", "random", "threading", "logging", "bz2", "lzma", "importlib")


def test_zygote_preloads_only_what_monitors_need() -> None:
    probe = "import json, sys\nfrom dockyard.runtime import zygote\nzygote.preload()\n"
    probe += "print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out))
    assert {"dockyard.runtime.monitor", "dockyard.runtime.builtin.runtime", "dockyard.runtime.jsonlog"} <= loaded
    assert not loaded & set(MONITOR_HEAVY), (
        f"the zygote (so every monitor) imports {sorted(loaded & set(MONITOR_HEAVY))}"
    )
