"""Waveform files: the raw writer against our reader and ngspice's own ``load``, and the CSV writer."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from kirchhoffnet.errors import ConfigError, DataError
from kirchhoffnet.spice import (
    RawPlot,
    find_ngspice,
    random_inputs,
    read_raw,
    spice_trajectory,
    write_raw,
    write_trajectory,
    write_waveforms,
)
from tests.conftest import small_circuit

T = np.linspace(0.0, 2e-3, 9)
V = np.stack([np.sin(1e3 * T), -np.cos(3e3 * T) / 7], axis=1)  # values that do not round in decimal


def test_raw_round_trip_is_bit_exact_with_several_plots(tmp_path):
    second = RawPlot("Transient Analysis", ("time", "v(n1)"), np.column_stack([T + 1.0, V[:, :1]]))
    path = write_raw(tmp_path / "w.raw", [RawPlot("Transient Analysis", ("time", "v(n1)", "i(vdd)"), np.c_[T, V])])
    (plot,) = read_raw(path)
    assert plot.variables == ("time", "v(n1)", "i(vdd)") and plot.name == "Transient Analysis"
    np.testing.assert_array_equal(plot.data, np.c_[T, V])
    _, again = read_raw(write_raw(tmp_path / "two.raw", [plot, second], title="t", date="d"))
    np.testing.assert_array_equal(again.data, second.data)
    assert (
        b"\t2\ti(vdd)\tcurrent\n" in path.read_bytes() and b"Title: t\nDate: d\n" in (tmp_path / "two.raw").read_bytes()
    )


@pytest.mark.needs_ngspice
def test_ngspice_loads_the_raw_file_we_write(tmp_path):
    raw = write_waveforms(tmp_path / "w.raw", torch.from_numpy(T), torch.from_numpy(V))
    script = tmp_path / "load.cir"
    script.write_text(f"load raw\n.control\nload {raw}\nwrdata {tmp_path / 'out.txt'} v(n1) v(n2)\n.endc\n.end\n")
    done = subprocess.run([find_ngspice(), "-b", str(script)], capture_output=True, text=True, timeout=60)
    assert "Transient Analysis" in done.stdout, done.stdout + done.stderr
    printed = np.loadtxt(tmp_path / "out.txt")  # wrdata: each vector as a (scale, value) column pair
    np.testing.assert_allclose(printed[:, 0], T, rtol=1e-7, atol=1e-15)
    np.testing.assert_allclose(printed[:, [1, 3]], V, rtol=1e-7, atol=1e-15)  # wrdata prints 8 digits


def test_csv_has_si_header_and_exact_values(tmp_path):
    path = write_waveforms(tmp_path / "w.csv", T, V, names=["v(in)", "v(out)"])
    lines = path.read_text().splitlines()
    assert lines[0] == "time_s,v(in),v(out)" and len(lines) == len(T) + 1
    np.testing.assert_array_equal(np.loadtxt(path, delimiter=",", skiprows=1), np.c_[T, V])


def test_trajectory_of_several_samples_and_slices(tmp_path):
    slices = [(T, np.stack([V, 2 * V], axis=1)), (T + T[-1], V[:, :1, None].repeat(2, axis=1))]
    (raw,) = write_trajectory(tmp_path / "t.raw", slices)
    first, second = read_raw(raw)
    assert first.variables == ("time", "v(n1_0)", "v(n2_0)", "v(n1_1)", "v(n2_1)")
    np.testing.assert_array_equal(first["v(n2_1)"], 2 * V[:, 1])
    assert second.variables == ("time", "v(n1_0)", "v(n1_1)")
    csvs = write_trajectory(tmp_path / "t.csv", slices)
    assert [p.name for p in csvs] == ["t.slice0.csv", "t.slice1.csv"]
    assert csvs[1].read_text().splitlines()[0] == "time_s,v(n1_0),v(n1_1)"


@pytest.mark.parametrize(
    ("times", "voltages", "names", "match"),
    [
        (T, V[:, 0], None, "times must be"),
        (T[:-1], V, None, "times must be"),
        (T, V, ["v(a)"], "2 voltage columns but 1 names"),
        (T, V, ["v(a)", "v (b)"], "without spaces"),
        (T, V, ["v(a)", ""], "without spaces"),
        (T[::-1], V, None, "non-decreasing times"),
        (T, np.where(V > 0.5, np.nan, V), None, "NaN"),
        (T[:0], V[:0], None, "at least one point"),
        (T, V.astype(complex), None, "must be real numbers"),
        ("abc", V, None, "must be real numbers"),
    ],
)
def test_writer_refuses_what_no_reader_would_get_back(tmp_path, times, voltages, names, match):
    with pytest.raises(ConfigError, match=match):
        write_waveforms(tmp_path / "w.raw", times, voltages, names)
    assert not (tmp_path / "w.raw").exists()


def test_writer_refuses_other_suffixes_titles_and_plots(tmp_path):
    with pytest.raises(ConfigError, match=r"must end in \.raw or \.csv, got '\.txt'"):
        write_waveforms(tmp_path / "w.txt", T, V)
    with pytest.raises(ConfigError, match="at least one plot"):
        write_raw(tmp_path / "w.raw", [])
    with pytest.raises(ConfigError, match="printable ASCII on one line"):
        write_raw(tmp_path / "w.raw", [RawPlot("x", ("time",), T[:, None])], title="two\nlines")
    with pytest.raises(ConfigError, match=r"data must be real \(points, 1\) values, got complex128"):
        write_raw(tmp_path / "w.raw", [RawPlot("ac", ("time",), T[:, None] + 1j)])
    with pytest.raises(ConfigError, match="first variable must be time"):
        write_raw(tmp_path / "w.raw", [RawPlot("x", ("v(a)",), T[:, None])])


def test_reader_refuses_truncated_and_hostile_files_we_wrote(tmp_path):
    blob = write_raw(tmp_path / "w.raw", [RawPlot("x", ("time", "v(a)"), np.c_[T, V[:, 0]])]).read_bytes()
    (tmp_path / "cut.raw").write_bytes(blob[:-5])
    with pytest.raises(DataError, match=r"is truncated: 9 points need 144 bytes, 139 are there"):
        read_raw(tmp_path / "cut.raw")
    (tmp_path / "huge.raw").write_bytes(blob.replace(b"No. Points: 9", b"No. Points: 999999999999"))
    with pytest.raises(DataError, match="is truncated"):  # checked before anything is allocated
        read_raw(tmp_path / "huge.raw")
    (tmp_path / "neg.raw").write_bytes(blob.replace(b"No. Variables: 2", b"No. Variables: -2"))
    with pytest.raises(DataError, match="announces -2 variables"):
        read_raw(tmp_path / "neg.raw")


@pytest.mark.needs_ngspice
@pytest.mark.usefixtures("one_torch_thread")
def test_kept_raw_files_hold_what_the_trajectory_returned(tmp_path):
    circuit = small_circuit("ShiftTanh2", num_nodes=3, slices=2).to(torch.float64)
    x = random_inputs(circuit, 3)
    result = spice_trajectory(circuit, x, samples_per_netlist=2, keep_raw=tmp_path / "raw")
    names = sorted(p.name for p in (tmp_path / "raw").iterdir())
    assert names == [f"slice{k}_samples{i}-{j}.raw" for k in (0, 1) for i, j in ((0, 2), (2, 3))]
    (plot,) = read_raw(tmp_path / "raw" / "slice1_samples2-3.raw")
    t, v = result.waves[1][2]
    np.testing.assert_array_equal(v[-1], [plot[f"v(n{n})"][-1] for n in range(1, v.shape[1] + 1)])
    np.testing.assert_allclose(t[-1], circuit.times[1] + plot["time"][-1], rtol=1e-12)
