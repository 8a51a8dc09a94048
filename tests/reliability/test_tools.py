"""External tools: ngspice missing, failing, hanging or not converging, faked by scripts on PATH.

Each fake records the directory it ran in, so that the tests can check the runner's temporary
directory is gone afterwards, whatever happened.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.errors import ToolError
from kirchhoffnet.spice._runner import run_ngspice

from ..conftest import small_circuit

NETLIST = "fake\nR1 1 0 1k\n.tran 1u 10u\n.end\n"
RECORD = 'pwd > "$KN_FAKE_LOG"; echo $$ >> "$KN_FAKE_LOG"\n'
FAKES = {
    "failing": RECORD + 'echo "Error on line 2 : r1 1 0 1k" >&2\necho "    unknown parameter (kx)" >&2\nexit 1\n',
    "non-converging": RECORD
    + 'echo "doAnalyses: TRAN:  Timestep too small; time = 1.2e-06, timestep = 1.25e-20: trouble with node v(3)" >&2\n'
    + 'echo "run simulation(s) aborted" >&2\nexit 1\n',
    "silent crash": RECORD + "exit 139\n",
    "no results": RECORD + "exit 0\n",
    "garbage results": RECORD + 'printf "Title: x\\nNo. Variables: banana\\n" > out.raw\nexit 0\n',
    "hanging": RECORD + "exec sleep 60\n",
}
MESSAGES = {
    "failing": r"ngspice failed: Error on line 2 : r1 1 0 1k; .*unknown parameter \(kx\)",
    "non-converging": r"ngspice failed: doAnalyses: TRAN:  Timestep too small; time = 1.2e-06.*aborted",
    "silent crash": r"ngspice failed: exit status 139 without a message",
    "no results": r"ngspice finished but its results are unusable: .*out.raw",
    "garbage results": r"ngspice finished but its results are unusable: .*out.raw",
    "hanging": r"ngspice did not finish within timeout_s=1 s; raise the timeout",
}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Install a fake ``ngspice`` script on PATH; returns (kind -> path of its log)."""

    def install(kind: str) -> Path:
        folder = tmp_path / "bin"
        folder.mkdir(exist_ok=True)
        script = folder / "ngspice"
        script.write_text("#!/bin/sh\n" + FAKES[kind])
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        log = tmp_path / f"{kind}.log"
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("KN_FAKE_LOG", str(log))
        monkeypatch.delenv("KIRCHHOFFNET_NGSPICE", raising=False)
        return log

    return install


def _ran_in(log: Path) -> tuple[Path, int]:
    folder, pid = log.read_text().split()
    return Path(folder), int(pid)


@pytest.mark.parametrize("kind", list(FAKES))
def test_a_misbehaving_ngspice_gives_a_clear_error_and_leaves_no_files(kind, fake):
    log = fake(kind)
    start = time.monotonic()
    with pytest.raises(ToolError, match=MESSAGES[kind]):
        run_ngspice(NETLIST, timeout_s=1.0)
    assert time.monotonic() - start < 30  # the hanging one was killed at its timeout
    folder, pid = _ran_in(log)
    assert folder.name.startswith("kirchhoffnet-spice-") and not folder.exists()  # temporary files removed
    if kind == "hanging":
        with pytest.raises(ProcessLookupError):  # the killed process is gone (reaped), not left running
            os.kill(pid, 0)


def test_a_missing_ngspice_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("KIRCHHOFFNET_NGSPICE", raising=False)
    with pytest.raises(ToolError, match=r"ngspice executable 'ngspice' was not found on PATH; .*apt-get install"):
        run_ngspice(NETLIST)


@pytest.mark.parametrize("kind", ["missing", "non-converging"])
def test_spice_verify_on_the_command_line_exits_2_with_one_line(kind, fake, tmp_path, monkeypatch):
    if kind == "missing":
        monkeypatch.setenv("PATH", str(tmp_path))
    else:
        fake(kind)
    model = kn.save(small_circuit(num_nodes=3, slices=1), tmp_path / "model.safetensors")
    result = CliRunner().invoke(app, ["spice", "verify", str(model), "--samples", "1", "--jobs", "1"])
    assert result.exit_code == 1, result.output  # ngspice failed: a runtime failure
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ngspice" in lines[0], result.output
