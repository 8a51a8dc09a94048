"""The raw-file reader: hand-written files in every layout, and files written by ngspice itself."""

from __future__ import annotations

import numpy as np
import pytest

from kirchhoffnet.errors import DataError
from kirchhoffnet.spice import read_raw, run_ngspice


def _header(names: list[str], points: int, flags: str = "real", plotname: str = "Transient Analysis") -> bytes:
    lines = [
        "Title: hand-made",
        "Date: today",
        f"Plotname: {plotname}",
        f"Flags: {flags}",
        f"No. Variables: {len(names)}",
        f"No. Points: {points}    ",
        "Variables:",
        *(f"\t{k}\t{name}\t{'time' if k == 0 else 'voltage'}" for k, name in enumerate(names)),
    ]
    return ("\n".join(lines) + "\n").encode()


def _binary(names: list[str], data: np.ndarray, **kwargs: str) -> bytes:
    flat = np.stack([data.real, data.imag], axis=-1) if np.iscomplexobj(data) else data
    return _header(names, len(data), **kwargs) + b"Binary:\n" + np.ascontiguousarray(flat, dtype="<f8").tobytes()


def test_binary_real_round_trip(tmp_path):
    data = np.array([[0.0, 1.5, -0.5], [1e-3, 1.25, -0.25], [2e-3, 1.0, 0.125]])
    (tmp_path / "a.raw").write_bytes(_binary(["time", "V(N1)", "v(n2)"], data))
    (plot,) = read_raw(tmp_path / "a.raw")
    assert plot.name == "Transient Analysis"
    assert plot.variables == ("time", "v(n1)", "v(n2)")  # names are lower-cased, as ngspice's are
    np.testing.assert_array_equal(plot.data, data)  # bit-exact: float64 on both sides
    np.testing.assert_array_equal(plot["V(n2)"], data[:, 2])


def test_several_plots_and_complex_values(tmp_path):
    real = np.array([[0.0, 2.0]])
    ac = np.array([[1.0 + 0j, 0.5 - 0.5j], [10.0 + 0j, 0.1 - 0.3j]])
    blob = _binary(["time", "v(a)"], real, plotname="Operating Point") + _binary(
        ["frequency", "v(a)"], ac, flags="complex", plotname="AC Analysis"
    )
    (tmp_path / "b.raw").write_bytes(blob)
    op, sweep = read_raw(tmp_path / "b.raw")
    assert (op.name, sweep.name) == ("Operating Point", "AC Analysis")
    np.testing.assert_array_equal(sweep["v(a)"], ac[:, 1])


def test_ascii_values(tmp_path):
    text = _header(["time", "v(n1)"], 2) + b"Values:\n 0\t0.0\n\t1.5\n\n 1\t1e-3\n\t1.25\n\n"
    (tmp_path / "c.raw").write_bytes(text)
    (plot,) = read_raw(tmp_path / "c.raw")
    np.testing.assert_array_equal(plot.data, [[0.0, 1.5], [1e-3, 1.25]])


def test_ascii_complex_values(tmp_path):
    text = _header(["frequency", "v(n1)"], 1, flags="complex") + b"Values:\n 0\t1.0,0.0\n\t0.5,-0.25\n"
    (tmp_path / "d.raw").write_bytes(text)
    (plot,) = read_raw(tmp_path / "d.raw")
    np.testing.assert_array_equal(plot.data, [[1.0 + 0j, 0.5 - 0.25j]])


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"", "is empty"),
        (b"Title: x\nNo. Variables: 1\n", "ends inside a header"),
        (b"Title: x\nVariables:\n\t0\ttime\ttime\nBinary:\n", "lacks a valid 'No. Variables'"),
        (_header(["time", "v(a)"], 1)[: -len(b"\t1\tv(a)\tvoltage\n")] + b"Binary:\n", "announces 2 variables"),
        (_header(["time"], 4) + b"Binary:\n" + bytes(16), "is truncated: 4 points need 32 bytes, 16 are there"),
        (_header(["time"], 3) + b"Values:\n 0\t0.0\n", "fewer than 3 points"),
        (b"Title: x\nVariables:\n\t0\n", "malformed variable line"),
    ],
)
def test_corrupt_files_are_reported(tmp_path, blob, match):
    (tmp_path / "bad.raw").write_bytes(blob)
    with pytest.raises(DataError, match=match):
        read_raw(tmp_path / "bad.raw")


def test_missing_file_and_unknown_variable(tmp_path):
    with pytest.raises(DataError, match="cannot read raw file"):
        read_raw(tmp_path / "nothing.raw")
    (tmp_path / "a.raw").write_bytes(_binary(["time", "v(n1)"], np.zeros((1, 2))))
    with pytest.raises(DataError, match=r"has no variable 'v\(n9\)'; it has time, v\(n1\)"):
        read_raw(tmp_path / "a.raw")[0]["v(n9)"]


@pytest.mark.needs_ngspice
def test_ngspice_ascii_and_binary_files_agree(tmp_path):
    """The same RC decay written by ngspice as ASCII (.control write) and as binary (-r)."""
    deck = "\n".join(
        [
            "* rc",
            "C1 n1 0 1 IC=1",
            "R1 n1 0 2",
            ".tran 0.1 1 0 0.01 uic",
            ".control",
            "set filetype=ascii",
            "run",
            f"write {tmp_path / 'ascii.raw'} v(n1)",
            ".endc",
            ".end",
            "",
        ]
    )
    binary = run_ngspice(deck).plot("transient")
    (text,) = read_raw(tmp_path / "ascii.raw")
    # ASCII carries 16 significant digits; binary is exact, so they agree to ~1e-15 relative.
    np.testing.assert_allclose(text["v(n1)"], binary["v(n1)"], rtol=1e-14)
    # And the physics: v = exp(-t / RC) with RC = 2 s, to ngspice's default accuracy (~1e-3 relative).
    np.testing.assert_allclose(binary["v(n1)"], np.exp(-binary["time"] / 2.0), rtol=2e-3)


@pytest.mark.needs_ngspice
def test_ngspice_ac_analysis_is_complex():
    """An RC low-pass in AC: H = 1 / (1 + jωRC), read back as complex values."""
    deck = "* lowpass\nV1 in 0 AC 1\nR1 in out 1k\nC1 out 0 1u\n.ac dec 5 10 10k\n.end\n"
    plot = run_ngspice(deck).plot("ac")
    omega = 2 * np.pi * plot["frequency"].real
    # ngspice's AC solve is a direct linear solve: exact to rounding.
    np.testing.assert_allclose(plot["v(out)"], 1 / (1 + 1j * omega * 1e3 * 1e-6), rtol=1e-10)
