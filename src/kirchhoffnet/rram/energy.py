"""Speed and energy of the analog solver against a digital step-by-step baseline: a documented model.

Why this is not the KirchhoffNet account ([`kirchhoffnet.hardware.energy`][kirchhoffnet.hardware.energy], on
``Slice.power``): it models a different physical system. The RRAM loop is crossbars of programmed conductances read by
op-amps (transimpedance, ReLU, integrator and gain stages), a noise source and an ADC, in physical units from the start;
its energy is dominated by the op-amps' static power, which a KirchhoffNet circuit does not have, and its
latency is set by an integration time T and the op-amp stages' RC settling rather than by τ = C₀/G₀. What the
two share is the time integral of a simulated power: the loop's crossbar power trace is integrated by the same
trapezoidal rule ([`kirchhoffnet.circuit.power.integrate`][kirchhoffnet.circuit.power.integrate]), in
`kirchhoffnet.rram.loop`.

Nothing here is measured on hardware. Every constant is a field of `SpeedEnergyModel`, so a
reader can put in the numbers of their own platform; `speed_energy_report` prints them with the
result.

Analog run (one trajectory per loop):
    latency  = settling (``settle_time_constants`` × the three stages' RC constants) + T + ADC read-out
    energy   = crossbar energy (Σ G V² over the run, from the simulation) + op-amps × P_opamp × latency
               + noise source × latency + ADC conversions.
Digital baseline:
    latency  = steps × per-step latency of one trajectory (batch 1: the latency of one sample)
    energy   = P_digital × steps × per-step latency of a batch / batch size (the batched, most
               efficient use of the digital processor).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SpeedEnergyModel(BaseModel):
    """Assumptions of the speed/energy comparison; defaults are order-of-magnitude placeholders."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    digital_steps: int = Field(default=10_000, ge=1, description="Euler steps of the digital sampler.")
    digital_step_latency_s: float = Field(
        default=30e-6, gt=0, description="Wall time of one digital Euler step of a single trajectory, seconds."
    )
    digital_batch: int = Field(default=10_000, ge=1, description="Trajectories per step in the batched digital run.")
    digital_batch_step_latency_s: float = Field(
        default=600e-6, gt=0, description="Wall time of one digital Euler step of the whole batch, seconds."
    )
    digital_power_w: float = Field(default=30.0, gt=0, description="Power of the digital processor while sampling, W.")
    tia_feedback_ohm: float = Field(default=10e3, gt=0, description="Transimpedance feedback resistance, ohms.")
    node_capacitance_f: float = Field(
        default=1e-12, gt=0, description="Parasitic capacitance of a crossbar column or hidden node, farads."
    )
    settle_time_constants: float = Field(
        default=5.0, gt=0, description="RC constants waited for the loop to settle before integrating."
    )
    opamp_power_w: float = Field(default=0.5e-3, gt=0, description="Static power of one op-amp, W.")
    noise_source_power_w: float = Field(default=1e-3, ge=0, description="Power of the noise generator, W.")
    adc_energy_j: float = Field(default=10e-12, ge=0, description="Energy of one ADC conversion, J.")
    adc_time_s: float = Field(default=1e-6, ge=0, description="Time to convert the final state, seconds.")


def opamp_count(width: int, dim: int) -> int:
    """Op-amps of the loop: a TIA per hidden column and output column, a ReLU stage per hidden node,
    an integrator and three programmable-gain stages (a, b, g) per state dimension, and an embedding
    source per hidden node."""
    return 2 * width + dim + 2 * width + dim + 3 * dim + width


def speed_energy_report(
    model: SpeedEnergyModel, integration_time_s: float, crossbar_energy_j: float, width: int, dim: int
) -> dict[str, Any]:
    """Latency and energy per trajectory, analog vs digital, with the assumptions that produced them.

    Args:
        integration_time_s: T of the analog loop.
        crossbar_energy_j: energy in the RRAM cells per trajectory (from [`LoopReport`][kirchhoffnet.rram.LoopReport]).
        width, dim: network sizes (count the op-amps).
    """
    stage_rc_s = model.tia_feedback_ohm * model.node_capacitance_f
    settle_s = model.settle_time_constants * 3 * stage_rc_s  # three crossbar stages in series
    analog_latency_s = settle_s + integration_time_s + model.adc_time_s
    opamps = opamp_count(width, dim)
    peripheral_j = (opamps * model.opamp_power_w + model.noise_source_power_w) * analog_latency_s
    analog_energy_j = crossbar_energy_j + peripheral_j + dim * model.adc_energy_j
    digital_latency_s = model.digital_steps * model.digital_step_latency_s
    digital_energy_j = (
        model.digital_power_w * model.digital_steps * model.digital_batch_step_latency_s / model.digital_batch
    )
    return {
        "assumptions": model.model_dump(),
        "integration_time_s": integration_time_s,
        "settle_s": settle_s,
        "opamps": opamps,
        "analog_latency_s": analog_latency_s,
        "analog_energy_j": analog_energy_j,
        "analog_energy_breakdown_j": {
            "crossbars": crossbar_energy_j,
            "op-amps and noise source": peripheral_j,
            "adc": dim * model.adc_energy_j,
        },
        "digital_latency_s": digital_latency_s,
        "digital_energy_j": digital_energy_j,
        "speedup": digital_latency_s / analog_latency_s,
        "energy_ratio": analog_energy_j / digital_energy_j,
        "energy_saving_percent": 100.0 * (1.0 - analog_energy_j / digital_energy_j),
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text: the result first, then every assumption."""
    analog, digital = report["analog_latency_s"] * 1e3, report["digital_latency_s"] * 1e3
    lines = [
        f"analog : {analog:10.4f} ms  {report['analog_energy_j'] * 1e6:12.4f} µJ per trajectory",
        f"digital: {digital:10.4f} ms  {report['digital_energy_j'] * 1e6:12.4f} µJ per trajectory",
        f"speed-up {report['speedup']:.1f}×, energy ratio {report['energy_ratio']:.3g} "
        f"({report['energy_saving_percent']:.1f} % less energy)",
        "analog energy: " + ", ".join(f"{k} {v * 1e6:.4g} µJ" for k, v in report["analog_energy_breakdown_j"].items()),
        f"integration time {report['integration_time_s'] * 1e3:g} ms, settling {report['settle_s'] * 1e9:.3g} ns, "
        f"{report['opamps']} op-amps",
        "assumptions:",
    ]
    lines += [f"  {key} = {value}" for key, value in report["assumptions"].items()]
    return "\n".join(lines)
