"""The ngspice runner: closed-form results, parallel runs, clean-up and every failure mode."""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from kirchhoffnet.errors import ToolError
from kirchhoffnet.spice import find_ngspice, has_ngspice, run_ngspice

pytestmark = pytest.mark.needs_ngspice


def _rc(v0: float, r: float = 0.5) -> str:
    return f"* rc\nC1 n1 0 1 IC={v0!r}\nR1 n1 0 {r!r}\n.options reltol=1e-7\n.tran 0.01 1 0 1e-3 uic\n.end\n"


def test_rc_decay_matches_the_closed_form():
    result = run_ngspice(_rc(2.0))
    plot = result.plot("transient")
    t, v = plot["time"], plot["v(n1)"]
    assert t[-1] == pytest.approx(1.0)
    # v = v0 exp(-t/RC), RC = 0.5 s; trapezoidal steps of 1e-3 s with reltol 1e-7: ~1e-6 relative.
    np.testing.assert_allclose(v, 2.0 * np.exp(-t / 0.5), rtol=1e-5)
    assert result.seconds > 0 and "Circuit: * rc" in result.log


def test_parallel_runs_do_not_share_files(tmp_path, monkeypatch):
    """Concurrent runs each read their own results, and leave no temporary directory behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    starts = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda v0: run_ngspice(_rc(v0)), starts))
    for v0, result in zip(starts, results, strict=True):
        v = result.plot("transient")["v(n1)"]
        assert v[-1] == pytest.approx(v0 * np.exp(-2.0), rel=1e-5)  # same tolerance as above
    assert list(tmp_path.iterdir()) == []


def test_missing_ngspice_says_how_to_install(monkeypatch):
    monkeypatch.setenv("KIRCHHOFFNET_NGSPICE", "ngspice-that-does-not-exist")
    assert not has_ngspice()
    with pytest.raises(ToolError, match=r"'ngspice-that-does-not-exist' was not found on PATH; .*apt-get install -y"):
        run_ngspice(_rc(1.0))
    with pytest.raises(ToolError, match="apt-get install -y ngspice"):
        find_ngspice()


def test_parse_error_quotes_ngspice():
    deck = "* bad\nC1 n1 0 1 IC=1\nB1 n1 0 I=nosuchfunction(v(n1))\n.tran 0.01 1 uic\n.end\n"
    with pytest.raises(ToolError, match=r"ngspice failed: Error: no such function 'nosuchfunction'.*Error on line"):
        run_ngspice(deck)


def test_unknown_subcircuit_is_reported():
    with pytest.raises(ToolError, match="unknown subckt"):
        run_ngspice("* bad\nC1 n1 0 1 IC=1\nX1 n1 0 nowhere\n.tran 0.01 1 uic\n.end\n")


def test_non_convergence_is_reported():
    """A current that explodes like exp(50 v) drives the step size to zero."""
    deck = "* blow-up\nC1 n1 0 1 IC=1.5\nB1 0 n1 I=exp(50*v(n1))\n.tran 0.01 1 0 1e-3 uic\n.end\n"
    with pytest.raises(ToolError, match="Timestep too small"):
        run_ngspice(deck)


def test_timeout_is_reported():
    deck = "* long\nC1 n1 0 1 IC=1\nR1 n1 0 1\n.tran 1e-6 100 0 1e-6 uic\n.end\n"
    with pytest.raises(ToolError, match=r"did not finish within timeout_s=0.2 s"):
        run_ngspice(deck, timeout_s=0.2)


def test_missing_plot_is_reported():
    with pytest.raises(ToolError, match="ngspice wrote no 'ac' plot; it wrote"):
        run_ngspice(_rc(1.0)).plot("ac")
