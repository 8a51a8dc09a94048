"""Without ngspice, its tests skip and say how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_needs_ngspice_tests_skip_with_the_install_command():
    env = {**os.environ, "KIRCHHOFFNET_NGSPICE": "ngspice-that-does-not-exist"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/spice/test_runner.py::test_rc_decay_matches_the_closed_form",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "1 skipped" in done.stdout, done.stdout + done.stderr
    assert "ngspice is not installed; apt-get install -y ngspice" in done.stdout
