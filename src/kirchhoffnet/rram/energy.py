"""Speed and energy of the analog RRAM solver against the digital sampler: an itemised, documented account.

Why this is not the KirchhoffNet account ([`kirchhoffnet.hardware.energy`][kirchhoffnet.hardware.energy], on
``Slice.power``): it models a different physical system. The RRAM loop is crossbars of programmed conductances read by
op-amps (transimpedance, ReLU, integrator and gain stages), a noise source, DACs and ADCs, in physical units from the
start; its latency is set by the drive signals' hold, the integration time T and the op-amp stages' RC settling rather
than by τ = C₀/G₀. What the two share is the time integral of a simulated power: the loop's crossbar power trace
is integrated by the same trapezoidal rule
([`kirchhoffnet.circuit.power.integrate`][kirchhoffnet.circuit.power.integrate]), in `kirchhoffnet.rram.loop`.

Nothing here is measured on hardware. Every number is either measured on this machine (the digital wall times),
simulated (the crossbar power on the programmed conductances, the loop's time constant), taken from the run's config
(T, the integrator capacitance) or an assumption: a field of `SpeedEnergyModel` whose description says where its
default comes from, overridable from the command line (``--assume NAME=VALUE``). `speed_energy_report` returns every
term; nothing is summed that is not also listed.

Analog, one trajectory per loop (latency = time per sample, a loop makes one sample at a time):
    latency = drive hold + T + settling (settle_time_constants × three stages' R_f C_node) + ADC conversion
    energy  = crossbars (simulated mean Σ G V² × latency) + op-amps × P_opamp × latency
              + noise source × latency (reverse SDE only) + DAC (dim initial voltages) + ADC (dim outputs)
Digital, measured; single-sample latency and batched throughput are kept apart:
    latency          = wall time of one trajectory sampled alone
    time per sample  = wall time of a batch / its size (throughput)
    energy / sample  = P_cpu × time per sample, in each of the two modes
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SpeedEnergyModel(BaseModel):
    """What the account assumes (with the source of each default) and what the caller measured."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    digital_single_latency_s: float = Field(
        default=1.0, gt=0, description="Measured: wall time of one trajectory sampled alone (batch 1), seconds."
    )
    digital_batch: int = Field(default=10_000, ge=1, description="Measured: trajectories of the timed batched run.")
    digital_batch_time_s: float = Field(
        default=1.0, gt=0, description="Measured: wall time of the batched run (all its trajectories), seconds."
    )
    digital_power_w: float = Field(
        default=15.0,
        gt=0,
        description="Assumption: CPU power while sampling, W (the share of a ~120 W, 16-core server CPU's rated power "
        "for the two cores used; not measured).",
    )
    drive_hold_s: float = Field(
        default=5e-3,
        ge=0,
        description="Assumption: time the drive signals (initial voltages, class and time inputs) are held before the "
        "loop runs, seconds (the paper's 5 ms, as issue 26 reads the authors' code; 0 = released at once).",
    )
    tia_feedback_ohm: float = Field(
        default=10e3, gt=0, description="Assumption: transimpedance feedback resistance R_f, ohms (a typical value)."
    )
    node_capacitance_f: float = Field(
        default=1e-12,
        gt=0,
        description="Assumption: parasitic capacitance of a crossbar column or hidden node, farads (order of a small "
        "array's line capacitance).",
    )
    settle_time_constants: float = Field(
        default=5.0, gt=0, description="Assumption: R_f C constants waited per stage (5: settled to 0.7 %)."
    )
    opamp_power_w: float = Field(
        default=0.5e-3,
        ge=0,
        description="Assumption: static power of one op-amp, W (a low-power CMOS op-amp of ~1 MHz bandwidth).",
    )
    noise_source_power_w: float = Field(
        default=1e-3, ge=0, description="Assumption: power of the noise generator (reverse SDE only), W."
    )
    dac_energy_j: float = Field(
        default=10e-12, ge=0, description="Assumption: energy of one DAC conversion (an initial voltage), J."
    )
    adc_energy_j: float = Field(
        default=10e-12, ge=0, description="Assumption: energy of one ADC conversion (a sample coordinate), J."
    )
    adc_time_s: float = Field(default=1e-6, ge=0, description="Assumption: time to convert the final state, seconds.")


def opamp_count(width: int, dim: int, branches: int = 1) -> int:
    """Op-amps of the loop. Per copy of the network (classifier-free guidance runs two): a TIA per hidden and
    output column, a ReLU stage and an embedding source per hidden node (5 W + dim); shared: an integrator and
    three programmable-gain stages (a, b, g) per state dimension (4 dim)."""
    return branches * (5 * width + dim) + 4 * dim


def speed_energy_report(
    model: SpeedEnergyModel,
    integration_time_s: float,
    crossbar_power_w: float,
    width: int,
    dim: int,
    *,
    stochastic: bool = True,
    branches: int = 1,
    integrator_time_constant_s: float | None = None,
    peak_loop_gain_per_s: float | None = None,
) -> dict[str, Any]:
    """Latency and energy per sample, analog vs digital, every term and assumption listed.

    Args:
        integration_time_s: T, the physical time the simulated loop integrated (the run's ``analog`` section).
        crossbar_power_w: mean power in the RRAM cells while the loop runs, from the simulation
            ([`LoopReport`][kirchhoffnet.rram.LoopReport] ``mean_crossbar_power_w``), on the programmed conductances.
        width, dim: network sizes (count the op-amps); branches: network copies (2 with guidance).
        stochastic: the reverse SDE (the noise source is powered) or the probability-flow ODE.
        integrator_time_constant_s: C / G_unit of the integrator fed by the output crossbar (reported only).
        peak_loop_gain_per_s: the largest output gain b(τ) the schedule asks of the loop at this T (reported only).
    """
    settle_s = model.settle_time_constants * 3 * model.tia_feedback_ohm * model.node_capacitance_f
    latency_terms = {
        "drive_hold": model.drive_hold_s,
        "integration": integration_time_s,
        "settling": settle_s,
        "adc": model.adc_time_s,
    }
    latency = sum(latency_terms.values())
    opamps = opamp_count(width, dim, branches)
    energy_terms = {
        "crossbars": crossbar_power_w * latency,
        "op-amps": opamps * model.opamp_power_w * latency,
        "noise_source": model.noise_source_power_w * latency if stochastic else 0.0,
        "dac": dim * model.dac_energy_j,
        "adc": dim * model.adc_energy_j,
    }
    energy = sum(energy_terms.values())
    per_sample_batched = model.digital_batch_time_s / model.digital_batch
    digital = {
        "single_latency_s": model.digital_single_latency_s,
        "single_energy_j": model.digital_power_w * model.digital_single_latency_s,
        "batched_time_per_sample_s": per_sample_batched,
        "batched_energy_per_sample_j": model.digital_power_w * per_sample_batched,
    }
    circuit: dict[str, Any] = {"integration_time_s": integration_time_s, "opamps": opamps, "branches": branches}
    if integrator_time_constant_s is not None:
        circuit["integrator_time_constant_s"] = integrator_time_constant_s
    if peak_loop_gain_per_s is not None:
        circuit["peak_loop_gain_per_s"] = peak_loop_gain_per_s
        if integrator_time_constant_s is not None:  # the gain the b-stage amplifier must supply at its peak
            gain = peak_loop_gain_per_s * integrator_time_constant_s
            circuit["peak_amplifier_gain"] = gain
            # b ∝ 1/T: the T at which that amplifier needs gain 1, i.e. the loop run at the crossbar's own rate
            circuit["unity_gain_integration_time_s"] = integration_time_s * gain
    return {
        "assumptions": model.model_dump(),
        "circuit": circuit,
        "analog": {
            "latency_s": latency,
            "latency_terms_s": latency_terms,
            "energy_j": energy,
            "energy_terms_j": energy_terms,
            "crossbar_power_w": crossbar_power_w,
        },
        "digital": digital,
        "ratios": {
            "latency_speedup": model.digital_single_latency_s / latency,
            "throughput_speedup": per_sample_batched / latency,
            "energy_saving_vs_single_percent": 100.0 * (1.0 - energy / digital["single_energy_j"]),
            "energy_saving_vs_batched_percent": 100.0 * (1.0 - energy / digital["batched_energy_per_sample_j"]),
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text: the result first, then every term, then every assumption."""
    analog, digital, ratios = report["analog"], report["digital"], report["ratios"]
    batch = report["assumptions"]["digital_batch"]
    lines = [
        f"analog (one loop)      : {analog['latency_s'] * 1e3:10.4f} ms/sample  "
        f"{analog['energy_j'] * 1e6:12.4f} µJ/sample",
        f"digital, one at a time : {digital['single_latency_s'] * 1e3:10.4f} ms/sample  "
        f"{digital['single_energy_j'] * 1e6:12.4f} µJ/sample",
        f"digital, batch {batch:<7d} : {digital['batched_time_per_sample_s'] * 1e3:10.4f} ms/sample  "
        f"{digital['batched_energy_per_sample_j'] * 1e6:12.4f} µJ/sample",
        f"latency speed-up (single-sample) {ratios['latency_speedup']:.3g}×, throughput speed-up (vs batched) "
        f"{ratios['throughput_speedup']:.3g}×",
        f"energy saving {ratios['energy_saving_vs_single_percent']:.1f} % vs single-sample, "
        f"{ratios['energy_saving_vs_batched_percent']:.1f} % vs batched",
        "analog latency: " + ", ".join(f"{k} {v * 1e3:.4g} ms" for k, v in analog["latency_terms_s"].items()),
        "analog energy : " + ", ".join(f"{k} {v * 1e6:.4g} µJ" for k, v in analog["energy_terms_j"].items()),
        "circuit       : " + ", ".join(f"{k} {v:.4g}" for k, v in report["circuit"].items()),
        "assumptions and measurements:",
    ]
    lines += [f"  {key} = {value}" for key, value in report["assumptions"].items()]
    return "\n".join(lines)
