"""``kirchhoffnet simulate --waveforms``, ``spice verify --keep-raw`` and ``spice veriloga``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.runtime import LIMIT_ENV
from kirchhoffnet.spice import read_raw

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_simulate_writes_every_slice_as_raw_and_csv(tmp_path, flow_checkpoint):
    model = kn.load(flow_checkpoint)
    x = torch.randn(2, model.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    np.save(tmp_path / "x.npy", x.numpy())
    args = ["simulate", str(flow_checkpoint), "--inputs", str(tmp_path / "x.npy"), "--samples", "2", "--points", "5"]
    result = runner.invoke(app, [*args, "--waveforms", str(tmp_path / "w.raw")])
    assert result.exit_code == 0, result.output
    plots = read_raw(tmp_path / "w.raw")
    assert len(plots) == 2 and plots[0].variables[:3] == ("time", "v(n1_0)", "v(n2_0)")
    with torch.no_grad():
        expected, _ = kn.trajectory(model.circuit.to(torch.float64), x, points_per_slice=5)
    for plot, (t, v) in zip(plots, expected, strict=True):
        np.testing.assert_array_equal(plot["time"], t.numpy())
        np.testing.assert_allclose(plot.data[:, 1:], v.reshape(len(t), -1).numpy(), rtol=0, atol=1e-12)
    result = runner.invoke(app, [*args, "--waveforms", str(tmp_path / "w.csv")])
    assert result.exit_code == 0, result.output
    second = np.loadtxt(tmp_path / "w.slice1.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(second, plots[1].data)  # both formats hold the same numbers


def test_simulate_refuses_other_suffixes_before_simulating(tmp_path, flow_checkpoint):
    result = runner.invoke(app, ["simulate", str(flow_checkpoint), "--waveforms", str(tmp_path / "w.vcd")])
    assert result.exit_code == 2 and "must end in .raw or .csv, got '.vcd'" in result.output


@pytest.mark.parametrize(
    ("options", "limit_gb", "message"),
    [  # before: the first did not end, the second was killed by the kernel (rc 137), the third failed in the allocator
        (["--points", "1000000000"], None, "points_per_slice must be an integer from 2 to 1,000,000, got 1000000000"),
        (["--samples", "1000000000"], "8", "samples: the flow's base-sample draw needs at least 32 GB but 8 GB"),
        (["--samples", "100000", "--points", "100000"], "8", "points_per_slice: the trajectory needs at least 320 GB"),
    ],
)
def test_simulate_refuses_work_past_the_limits_before_solving(tmp_path, flow_checkpoint, options, limit_gb, message):
    env = {LIMIT_ENV: limit_gb} if limit_gb else {}
    args = ["simulate", str(flow_checkpoint), *options, "--waveforms", str(tmp_path / "w.raw")]
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "w.raw").exists()


def test_trajectory_points_closer_than_the_dtype_tells_apart_are_refused():
    circuit = kn.Circuit(kn.topology.fully_connect(3), times=(1e6, 1e6 + 1))  # float32 floats near 1e6 are 0.06 apart
    with pytest.raises(ConfigError, match=r"^points_per_slice: 1,000 points over slice 0 .* closer than float32"):
        kn.trajectory(circuit, torch.zeros(1, 2), points_per_slice=1000)
    waves, _ = kn.trajectory(circuit.double(), torch.zeros(1, 2, dtype=torch.float64), points_per_slice=1000)
    assert torch.unique(waves[0][0]).numel() == 1000  # float64 tells them apart


@pytest.mark.needs_ngspice
def test_verify_keeps_the_raw_files(tmp_path, flow_checkpoint):
    keep = tmp_path / "raw"
    result = runner.invoke(app, ["spice", "verify", str(flow_checkpoint), "--samples", "1", "--keep-raw", str(keep)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in keep.iterdir()) == ["slice0_samples0-1.raw", "slice1_samples0-1.raw"]
    assert read_raw(keep / "slice0_samples0-1.raw")[0].name == "Transient Analysis"


def test_veriloga_command(tmp_path, flow_checkpoint):
    result = runner.invoke(app, ["spice", "veriloga", str(flow_checkpoint), "--out", str(tmp_path / "va")])
    assert result.exit_code == 0, result.output
    assert "module ShiftTanh2(p, n);" in (tmp_path / "va" / "ShiftTanh2.va").read_text()
    result = runner.invoke(app, ["spice", "veriloga", str(tmp_path / "none")])
    assert result.exit_code == 1 and "is neither a checkpoint file" in result.output
