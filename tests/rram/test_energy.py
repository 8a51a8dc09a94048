import pytest
from pydantic import ValidationError

from kirchhoffnet.rram.energy import SpeedEnergyModel, format_report, opamp_count, speed_energy_report


def test_report_follows_its_formulas():
    model = SpeedEnergyModel(
        digital_steps=1000,
        digital_step_latency_s=1e-4,
        digital_batch=10,
        digital_batch_step_latency_s=3e-4,
        digital_power_w=50.0,
        tia_feedback_ohm=1e4,
        node_capacitance_f=1e-12,
        settle_time_constants=5,
        opamp_power_w=1e-3,
        noise_source_power_w=0.0,
        adc_energy_j=1e-11,
        adc_time_s=1e-6,
    )
    report = speed_energy_report(model, integration_time_s=1e-3, crossbar_energy_j=2e-6, width=14, dim=2)
    settle = 5 * 3 * 1e4 * 1e-12  # three RC stages: 150 ns
    latency = settle + 1e-3 + 1e-6
    assert report["analog_latency_s"] == pytest.approx(latency, rel=1e-12)
    assert report["opamps"] == opamp_count(14, 2) == 2 * 14 + 2 + 2 * 14 + 2 + 3 * 2 + 14
    energy = 2e-6 + report["opamps"] * 1e-3 * latency + 2 * 1e-11
    assert report["analog_energy_j"] == pytest.approx(energy, rel=1e-12)
    assert report["digital_latency_s"] == pytest.approx(0.1)
    assert report["digital_energy_j"] == pytest.approx(50.0 * 1000 * 3e-4 / 10)
    assert report["speedup"] == pytest.approx(0.1 / latency)
    assert report["energy_saving_percent"] == pytest.approx(100 * (1 - energy / 1.5))
    text = format_report(report)
    assert "speed-up" in text and "digital_power_w = 50.0" in text  # every assumption is printed


def test_assumptions_are_validated():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SpeedEnergyModel(gpu_watts=300)
    with pytest.raises(ValidationError, match="greater than 0"):
        SpeedEnergyModel(digital_step_latency_s=0)
