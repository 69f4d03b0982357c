"""`reconciler sim` as a child process, for tests that drive the CLI as a user does."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

CLI = [sys.executable, "-m", "reconciler"]
ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_sim(*flags: str) -> Iterator[dict[str, str]]:
    """Start the simulators; yield the environment with the `export` lines they print."""
    proc = subprocess.Popen([*CLI, "sim", *flags], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    env = dict(os.environ)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"export (\w+)='(.*)'$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
        if line.startswith("# Ctrl-C"):
            break
    try:
        assert {"NOMAD_ADDR", "MULTIPASS_SERVER_ADDRESS", "MULTIPASS_CLIENT_CERT"} <= env.keys()
        yield env
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
