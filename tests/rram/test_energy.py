import pytest
from pydantic import ValidationError

from kirchhoffnet.rram.energy import SpeedEnergyModel, format_report, opamp_count, speed_energy_report


def _model(**update: float) -> SpeedEnergyModel:
    values = dict(
        digital_single_latency_s=0.1,
        digital_batch=10,
        digital_batch_time_s=0.3,
        digital_power_w=50.0,
        drive_hold_s=5e-3,
        tia_feedback_ohm=1e4,
        node_capacitance_f=1e-12,
        settle_time_constants=5,
        opamp_power_w=1e-3,
        noise_source_power_w=2e-3,
        dac_energy_j=3e-11,
        adc_energy_j=1e-11,
        adc_time_s=1e-6,
    )
    return SpeedEnergyModel(**(values | update))


def test_report_follows_its_formulas_term_by_term():
    report = speed_energy_report(_model(), integration_time_s=1e-3, crossbar_power_w=2e-3, width=14, dim=2)
    settle = 5 * 3 * 1e4 * 1e-12  # three RC stages: 150 ns
    latency = 5e-3 + 1e-3 + settle + 1e-6
    analog = report["analog"]
    assert analog["latency_s"] == pytest.approx(latency, rel=1e-12)
    assert analog["latency_terms_s"]["drive_hold"] == 5e-3 and analog["latency_terms_s"]["settling"] == settle
    opamps = report["circuit"]["opamps"]
    assert opamps == opamp_count(14, 2) == 5 * 14 + 2 + 4 * 2
    terms = analog["energy_terms_j"]
    assert terms["crossbars"] == pytest.approx(2e-3 * latency)
    assert terms["op-amps"] == pytest.approx(opamps * 1e-3 * latency)
    assert terms["noise_source"] == pytest.approx(2e-3 * latency)
    assert terms["dac"] == pytest.approx(2 * 3e-11) and terms["adc"] == pytest.approx(2 * 1e-11)
    assert analog["energy_j"] == pytest.approx(sum(terms.values()), rel=1e-12)
    digital = report["digital"]
    assert digital["single_energy_j"] == pytest.approx(50.0 * 0.1)
    assert digital["batched_time_per_sample_s"] == pytest.approx(0.03)
    assert digital["batched_energy_per_sample_j"] == pytest.approx(50.0 * 0.03)
    ratios = report["ratios"]
    assert ratios["latency_speedup"] == pytest.approx(0.1 / latency)  # single-sample against single-sample
    assert ratios["throughput_speedup"] == pytest.approx(0.03 / latency)  # batched time per sample against one loop
    assert ratios["energy_saving_vs_batched_percent"] == pytest.approx(100 * (1 - analog["energy_j"] / 1.5))
    text = format_report(report)
    assert "throughput speed-up" in text and "digital_power_w = 50.0" in text  # every assumption is printed


def test_the_ode_powers_no_noise_source_and_guidance_doubles_the_network():
    sde = speed_energy_report(_model(), 1e-3, 0.0, width=14, dim=2)
    ode = speed_energy_report(_model(), 1e-3, 0.0, width=14, dim=2, stochastic=False)
    assert ode["analog"]["energy_terms_j"]["noise_source"] == 0 < sde["analog"]["energy_terms_j"]["noise_source"]
    guided = speed_energy_report(_model(), 1e-3, 0.0, width=14, dim=2, branches=2)
    assert guided["circuit"]["opamps"] == 2 * (5 * 14 + 2) + 4 * 2
    held = speed_energy_report(_model(drive_hold_s=0.0), 1e-3, 0.0, width=14, dim=2)
    assert sde["analog"]["latency_s"] - held["analog"]["latency_s"] == pytest.approx(5e-3)


def test_the_amplifier_gain_is_the_loop_gain_times_the_integrator_time_constant():
    report = speed_energy_report(_model(), 1e-3, 0.0, 14, 2, integrator_time_constant_s=2e-5, peak_loop_gain_per_s=1e6)
    assert report["circuit"]["peak_amplifier_gain"] == pytest.approx(20.0)
    assert report["circuit"]["unity_gain_integration_time_s"] == pytest.approx(20e-3)  # b ∝ 1/T


def test_assumptions_are_validated():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SpeedEnergyModel(gpu_watts=300)
    with pytest.raises(ValidationError, match="greater than 0"):
        SpeedEnergyModel(digital_single_latency_s=0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SpeedEnergyModel(drive_hold_s=-1)
