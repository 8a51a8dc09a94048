"""Every script in examples/ runs in its fast mode, writes its figure and gets the physics right."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType

import pytest

from kirchhoffnet.spice import has_ngspice

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PNG_MAGIC = b"\x89PNG"

# The examples set torch to one thread (fastest for tiny circuits); the fixture restores it afterwards.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:4] == PNG_MAGIC


def test_circuit_by_hand_matches_expm(tmp_path: Path) -> None:
    result = load("circuit_by_hand").main(tmp_path, fast=True)
    assert result["max_abs_error_v"] < 1e-7  # dopri5 at rtol = atol = 1e-9 over ~300 steps
    assert result["final_max_abs_v"] < 0.1  # every node discharges through the resistors to ground
    assert is_png(tmp_path / "circuit.png")


def test_train_twomoon_learns(tmp_path: Path) -> None:
    result = load("train_twomoon").main(tmp_path, fast=True)
    # Untrained, the flow is near N(0, I) on data of spread ~1: NLL ≈ 3 nats; 4 short epochs must get
    # well below it (measured 1.74), and the held-out NLL must agree with validation to sampling error.
    assert result["val_nll_last"] < result["val_nll_first"] - 0.5
    assert abs(result["test_nll"] - result["val_nll_last"]) < 0.2
    assert is_png(tmp_path / "twomoon" / "samples.png")


@pytest.mark.needs_ngspice
@pytest.mark.skipif(not has_ngspice(), reason="ngspice not installed (apt-get install -y ngspice)")
def test_original_in_spice_agrees(tmp_path: Path) -> None:
    result = load("original_in_spice").main(tmp_path, fast=True)
    assert result is not None
    # docs/spice.md: ngspice at reltol 1e-8 against float64 dopri5 agrees to ~1e-5 V on ±20 V swings.
    assert result["max_abs_error_v"] < 1e-3
    assert result["peak_abs_voltage_v"] > 1.0  # the waveforms were not trivially zero
    assert is_png(tmp_path / "spice.png") and (tmp_path / "spice.json").is_file()


def test_hardware_report(tmp_path: Path) -> None:
    result = load("hardware_report").main(tmp_path, fast=True)
    assert result is not None
    # 2 slices of 0.5 normalised time at τ = 1 pF / 1 mS = 1 ns, plus 5 τ of input settling: 6 ns.
    assert result["latency_s"] == pytest.approx(6e-9, rel=1e-6)
    assert 0 < result["energy_j"] < 1e-6 and math.isfinite(result["nll_at_max_sigma"])
    assert is_png(tmp_path / "variation.png") and (tmp_path / "hardware.json").is_file()


def test_rram_ring(tmp_path: Path) -> None:
    result = load("rram_ring").main(tmp_path, fast=True)
    # An untrained network gives a KL of ~18 against the ring; 1500 quick steps bring it to ~1.4.
    # The chip (5 % programming noise) must sample the same model about as well as digital Euler.
    assert result["digital"] < 4.0
    assert result["analog"] < 2 * result["digital"] + 0.5
    assert is_png(tmp_path / "rram_ring.png")
