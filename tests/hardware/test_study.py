"""The hardware studies as files: what each writes, and that the files hold what the call returns."""

from __future__ import annotations

import json

import pytest
import torch

import kirchhoffnet as kn
from kirchhoffnet.hardware import Noise, PhysicalDesign, measure, mse
from kirchhoffnet.hardware.study import (
    REPORT_SUMMARY,
    montecarlo_study,
    noise_study,
    quantization_study,
    report_study,
)

from ..conftest import small_circuit


@pytest.fixture
def net() -> kn.Network:
    torch.manual_seed(0)
    return kn.Network(small_circuit(), "last1")


def test_report_study_writes_the_report_and_returns_its_data(net, tmp_path):
    x = torch.randn(4, 3)
    study = report_study(
        net, x, PhysicalDesign(capacitance_f=2e-12), tmp_path, name="n", source="/models/n", points_per_slice=11
    )
    assert study.files == (tmp_path / "hw_report.json", tmp_path / "hw_report.md", tmp_path / "waveforms.png")
    assert all(path.stat().st_size > 0 for path in study.files)
    assert json.loads(study.files[0].read_text()) == json.loads(json.dumps(study.result))
    assert study.result["source"] == "/models/n" and study.result["num_samples"] == 4
    assert study.result["latency_s"] == pytest.approx(14e-9)  # (2 slices of 1 + 5) τ, τ = 2 pF / 1 mS
    assert list(study.summary) == list(REPORT_SUMMARY)
    assert study.summary == {k: study.result[k] for k in REPORT_SUMMARY}
    page = study.files[1].read_text()
    assert page.startswith("# Hardware report: n\n") and page.endswith(
        PhysicalDesign(capacitance_f=2e-12).describe() + "\n"
    )


def test_report_study_fits_the_voltage_scale_to_the_supply(net, tmp_path):
    x = torch.randn(4, 3)
    supply = (-0.3, 0.3)
    fit = measure(net, x, points_per_slice=11).voltage_scale_to_fit(supply)
    study = report_study(
        net, x, PhysicalDesign(voltage_v=5.0, supply_v=supply), tmp_path, name="n", source="n",
        fit_voltage=True, points_per_slice=11,
    )  # fmt: skip
    assert study.result["design"]["voltage_v"] == pytest.approx(fit)  # the given 5 V is replaced
    assert study.summary["within_supply"] is True


def test_montecarlo_study_draws_the_same_dies_for_every_model(net, tmp_path):
    metric = mse(torch.randn(16, 3), torch.randn(16, 1))
    study = montecarlo_study([("a", net, metric), ("b", net, metric)], [0.0, 0.1], tmp_path, trials=3, seed=7)
    zero, tenth = study.result["a"]
    assert zero.values == [zero.nominal] * 3  # σ = 0: the nominal circuit itself
    assert tenth.values != [tenth.nominal] * 3 and len(set(tenth.values)) == 3
    assert [r.values for r in study.result["b"]] == [zero.values, tenth.values]  # same seed, same dies
    data = json.loads(study.files[0].read_text())
    assert data["kind"] == "edge" and data["curves"]["a"] == [r.to_dict() for r in study.result["a"]]
    assert study.files[1].read_text().startswith("# Monte-Carlo over dies: edge variation, 3 dies per σ\n")
    assert study.files[2] == tmp_path / "montecarlo.png" and study.files[2].stat().st_size > 0


def test_quantization_study_has_one_curve_per_model_and_scheme(net, tmp_path):
    metric = mse(torch.randn(16, 3), torch.randn(16, 1))
    study = quantization_study([("a", net, metric)], [2, 12], ["uniform", "lut"], tmp_path)
    assert list(study.result) == ["a uniform", "a lut"]
    for scheme in ("uniform", "lut"):
        coarse, fine = study.result[f"a {scheme}"]
        assert (coarse["bits"], fine["bits"]) == (2, 12) and coarse["scheme"] == scheme
        assert fine["param_rms_error"] < coarse["param_rms_error"]
    assert json.loads(study.files[0].read_text()) == {"curves": study.result}
    assert [p.name for p in study.files] == ["quantization.json", "quantization.md", "quantization.png"]


def test_noise_study_sorts_the_capacitances_and_titles_the_noise(tmp_path):
    torch.manual_seed(0)
    flow = kn.Flow(kn.Circuit(kn.topology.fully_connect(3, (2, 2)), "ShiftTanh2", slices=2, times=(0, 0.2, 0.4)))
    z = torch.randn(32, 2, dtype=torch.float64)
    base = PhysicalDesign(temperature_k=77.0)
    study = noise_study(
        flow, z, [1e-12, 1e-18], base, Noise(excess_factor=0.5, read=0.01), tmp_path, name="f", source="/f",
        reference=torch.randn(32, 2), dt=0.01,
    )  # fmt: skip
    assert [row["capacitance_f"] for row in study.result] == [1e-18, 1e-12]  # smallest first
    assert study.result[0]["output_rms_deviation_v"] > study.result[1]["output_rms_deviation_v"]  # kT/C
    assert all("energy_distance" in row for row in study.result)  # with a reference
    assert json.loads(study.files[0].read_text()) == {"source": "/f", "rows": study.result}
    assert study.files[1].read_text().startswith("# Noise in f: T = 77 K, γ = 0.5, read noise 0.01\n")
