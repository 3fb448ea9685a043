"""The simulator as most developers run it: without privileges. The layers an unprivileged process can apply
(Landlock, seccomp, rlimits, env, fds) are still in force and refuse a hostile app as production does; the two
that need privileges (a uid of the app's own, a network namespace) are reported missing, never silently claimed,
and `yima-sdk dev` says so in one line.

The test machine runs as root, and its interpreter lives under /root where another uid cannot reach it, so
"without privileges" is root with every capability dropped (`setpriv`): it can change no uid and enter no
namespace, exactly what a developer's own account cannot do either."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
SETPRIV = shutil.which("setpriv")
NO_CAPABILITIES = [
    SETPRIV or "setpriv",
    "--bounding-set=-all",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--",
]

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0 or SETPRIV is None,
    reason="needs root on Linux and setpriv (util-linux) to run a process with no capabilities",
)

PROBE = """
import json, sys
from yima_sdk.simulator import Simulator
with Simulator(sys.argv[1]) as hostile:
    print(json.dumps({
        "missing": hostile.missing_layers,
        "read": hostile.get("/read").json(),
        "socket": hostile.get("/socket").json(),
    }))
"""


def test_unprivileged_simulator_keeps_the_layers_it_can_and_names_the_rest() -> None:
    done = subprocess.run(
        [*NO_CAPABILITIES, sys.executable, "-c", PROBE, str(APPS / "hostile")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["missing"] == ["uid", "netns"]  # exactly the two that need privileges
    assert seen["read"] == {"refused": True, "error": "PermissionError"}  # Landlock still holds
    assert seen["socket"] == {"refused": True, "error": "PermissionError"}  # seccomp still holds


def test_yima_sdk_dev_says_in_one_line_what_is_missing() -> None:
    cli = str(Path(sys.executable).parent / "yima-sdk")
    proc = subprocess.Popen(
        [*NO_CAPABILITIES, cli, "dev", str(APPS / "hostile"), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("serving on"):
                break
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [line for line in lines if line.startswith("OS layers")] == [
        "OS layers missing here (production requires them): uid, netns"
    ], lines
