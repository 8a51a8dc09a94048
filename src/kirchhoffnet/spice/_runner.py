"""Running ngspice in batch mode: one process per netlist, in a private temporary directory.

Each run writes its netlist to a fresh directory, calls ``ngspice -b -r out.raw net.cir`` there
and reads the raw file back, so any number of runs may go on in parallel (threads or processes)
without sharing a file. ngspice reports parse errors, missing models and convergence failures
("Timestep too small") on stderr and exits with status 1; the runner turns each into a
[`ToolError`][kirchhoffnet.errors.ToolError] that quotes ngspice's own words.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kirchhoffnet.errors import DataError, ToolError
from kirchhoffnet.io.paths import storage_error
from kirchhoffnet.spice._raw import RawPlot, read_raw, write_bytes_atomic

INSTALL_HINT = "install it with: apt-get install -y ngspice"
_ERROR_MARKERS = (
    "error",
    "expression err",
    "cannot compute",
    "timestep too small",
    "aborted",
    "singular matrix",
    "no convergence",
    "unknown",
)


@dataclass(frozen=True)
class RunResult:
    """What one ngspice run produced.

    Attributes:
        plots: the plots of its raw file.
        seconds: wall-clock time of the ngspice process, start-up and parsing included.
        log: its stdout and stderr, for diagnosis.
    """

    plots: list[RawPlot]
    seconds: float
    log: str

    def plot(self, name: str) -> RawPlot:
        """The first plot whose name starts with ``name`` (case-insensitive), e.g. ``transient``."""
        for plot in self.plots:
            if plot.name.lower().startswith(name.lower()):
                return plot
        raise ToolError(f"ngspice wrote no {name!r} plot; it wrote {[p.name for p in self.plots]}")


def find_ngspice(executable: str | None = None) -> str:
    """Path of the ngspice executable (``$KIRCHHOFFNET_NGSPICE`` or ``ngspice`` on PATH)."""
    name = executable or os.environ.get("KIRCHHOFFNET_NGSPICE", "ngspice")
    found = shutil.which(name)
    if found is None:
        raise ToolError(f"ngspice executable {name!r} was not found on PATH; {INSTALL_HINT}")
    return found


def has_ngspice() -> bool:
    """Whether [`find_ngspice`][kirchhoffnet.spice.find_ngspice] would succeed."""
    try:
        find_ngspice()
    except ToolError:
        return False
    return True


def run_ngspice(
    netlist: str,
    *,
    timeout_s: float = 600.0,
    executable: str | None = None,
    threads: int = 1,
    keep_raw: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Simulate ``netlist`` with ngspice in batch mode and return its raw-file plots.

    Args:
        netlist: complete SPICE deck text (title line first, ``.end`` last).
        timeout_s: the process is killed after this many seconds.
        executable: ngspice binary to use instead of the default (see
            [`find_ngspice`][kirchhoffnet.spice.find_ngspice]).
        threads: OpenMP threads of the process (ngspice parallelises BSIM4 evaluation). One by
            default: runs are parallel as processes, and on a busy machine OpenMP threads waiting
            on each other made BSIM4 sweeps ten times slower.

    Raises:
        ToolError: ngspice is missing, timed out, failed to converge, rejected the netlist or
            wrote no results; the message quotes ngspice's error lines.
    """
    exe = find_ngspice(executable)
    try:
        scratch = tempfile.TemporaryDirectory(prefix="kirchhoffnet-spice-")
        (Path(scratch.name) / "net.cir").write_text(netlist)
    except OSError as exc:  # a full or read-only temporary folder
        raise storage_error(exc, tempfile.gettempdir(), "writing the netlist to") from None
    with scratch as folder:
        work = Path(folder)
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [exe, "-b", "-r", "out.raw", "net.cir"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "OMP_NUM_THREADS": str(int(threads))},
            )
        except subprocess.TimeoutExpired:
            raise ToolError(
                f"ngspice did not finish within timeout_s={timeout_s:g} s; raise the timeout, loosen "
                "reltol or enlarge the maximum step, or simulate fewer samples per netlist"
            ) from None
        seconds = time.perf_counter() - start
        log = done.stdout + done.stderr
        problems = _problems(done.stderr)
        if done.returncode != 0 or problems:
            reason = "; ".join(problems) or f"exit status {done.returncode} without a message"
            raise ToolError(f"ngspice failed: {reason}")
        try:
            plots = read_raw(work / "out.raw")
        except DataError as exc:
            raise ToolError(f"ngspice finished but its results are unusable: {exc}") from None
        if keep_raw is not None:
            write_bytes_atomic(keep_raw, (work / "out.raw").read_bytes())
    return RunResult(plots, seconds, log)


def _problems(stderr: str) -> list[str]:
    """ngspice's error lines, with the offending netlist line that follows 'Error on line'."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    found: list[str] = []
    for k, line in enumerate(lines):
        lower = line.lower()
        if lower.startswith("warning") or lower.startswith("note"):
            continue
        if any(marker in lower for marker in _ERROR_MARKERS):
            found.append(line)
            if lower.startswith("error on line") and k + 1 < len(lines):
                found.append(lines[k + 1][:200])
    return list(dict.fromkeys(found))[:6]
