"""Evaluation and the hardware view of a KirchhoffNet score-circuit run (``model.kind: kirchhoffnet``).

The hardware numbers are the account of [`kirchhoffnet.hardware.energy`][kirchhoffnet.hardware.energy], the one a
circuit's inference uses: the power of the circuit's devices ([`Slice.power`][kirchhoffnet.Slice.power], plus the hidden
leak resistors) integrated over the generation transient into an [`EnergyTally`][kirchhoffnet.circuit.EnergyTally], the
supply energy being the charge loaded onto the data capacitors plus the energy the active devices deliver, the
rail bound ∫ Σ|i| dt × the supply span (every device current drawn from the rails); a
[`PhysicalDesign`][kirchhoffnet.hardware.PhysicalDesign] turns it into seconds (τ = C₀/G₀) and joules (C₀V₀²).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
from torch import Tensor

from kirchhoffnet._progress import bar
from kirchhoffnet.circuit import EnergyTally, Power
from kirchhoffnet.circuit.power import charging_energy
from kirchhoffnet.data.points import sample_points
from kirchhoffnet.data.seeds import draw_seed
from kirchhoffnet.diffusion import plots
from kirchhoffnet.diffusion._threads import single_thread
from kirchhoffnet.diffusion.metrics import kl_report
from kirchhoffnet.diffusion.run import RUN_METRICS, Run, reference_points
from kirchhoffnet.diffusion.sample import time_grid
from kirchhoffnet.diffusion.samplers import solver_names
from kirchhoffnet.diffusion.sampling import sample_run
from kirchhoffnet.diffusion.score_circuit.likelihood import circuit_log_likelihood
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel, guided_copies, mix_copies
from kirchhoffnet.diffusion.score_circuit.sample import HIDDEN_CAPACITANCE, circuit_pf_ode
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.energy import energies, latency
from kirchhoffnet.hardware.supply import voltage_scale_to_fit
from kirchhoffnet.hardware.units import PhysicalDesign, format_quantity
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.io.figures import save_figure

NLL_POINTS, NLL_STEPS = 2000, 300
"""Held-out points (at most; no more than evaluate.num_samples) and Heun steps of the evaluation's NLL (300 steps
agree with 100 to 0.002 nats on the ring)."""


def held_out_points(task: str, reference_seed: int, n: int = NLL_POINTS) -> Tensor:
    """The points the evaluation's NLL is measured on (the ``nll`` draw of the reference seed), so other
    models can be scored on the very same points."""
    return sample_points(task, n, seed=draw_seed(reference_seed, "nll"))


@dataclass(frozen=True)
class GenerationMeasurement:
    """One generation's transient in normalised units (C₀ = G₀ = V₀ = 1), per sample: what a
    [`PhysicalDesign`][kirchhoffnet.hardware.PhysicalDesign] scales into joules, seconds and volts
    (`physical_report`)."""

    model: CircuitScoreModel
    copies: int
    tally: EnergyTally
    voltage_range: tuple[float, float]


@torch.no_grad()
def measure_generation(
    model: CircuitScoreModel,
    n: int = 1000,
    steps: int = 1000,
    seed: int = 0,
    labels: Tensor | None = None,
    guidance: float = 0.0,
    progress: bool = False,
) -> GenerationMeasurement:
    """The quasi-static probability-flow transient of ``n`` generations from x ~ N(0, I) (seed ``seed``), the
    power of its devices and leaks integrated by the rectangle rule over ``steps`` steps. A conditional circuit
    generates ``labels`` (n,); with ``guidance`` w ≠ 0 both copies of the guided pair count, the mixing gains are
    not modelled. ``progress``: a bar over the steps, or periodic lines off a terminal (`kirchhoffnet._progress`)."""
    circuit, gain = model.circuit, model.velocity_gain
    grid = time_grid(model.sde, steps)
    copies, mixing = guided_copies(labels, guidance)
    x = torch.randn(n, model.dim, generator=torch.Generator().manual_seed(seed)).t().contiguous()
    tally = EnergyTally.zeros(n)
    tally.load += charging_energy(x.new_zeros(n, 0), x.t(), x.new_tensor(1 / gain))  # C_x = 1/k, 0 V → x
    v_min, v_max, hidden = 0.0, 0.0, None

    def per_sample(power: Power) -> Power:  # (copies · n,) → (n,): a sample's copies together
        def fold(values: Tensor) -> Tensor:
            return values.view(len(mixing), n).sum(0)

        peak = power.peak_current.view(len(mixing), n).amax(0)
        return Power(fold(power.dissipated), fold(power.delivered), fold(power.current), peak)

    with single_thread():
        for k in bar(range(steps), desc="hw report", unit="step", enabled=progress, leave=False):
            s, dt = grid[k].float(), float(grid[k] - grid[k + 1])
            stacked = x.repeat(1, len(mixing))
            drive = circuit.drive(s, copies).expand(-1, stacked.shape[1])
            velocity, hidden = circuit.settled_velocity(stacked, drive, hidden)
            nodes = torch.cat([stacked, hidden, drive]).t()  # (B, N): every node but ground
            power = circuit.edges.power(nodes).plus(Power.resistive(circuit.leak, hidden.t()))
            tally.add(per_sample(power), dt, circuit.edges.num_edges + circuit.hidden)
            v_min, v_max = min(v_min, float(nodes.min())), max(v_max, float(nodes.max()))
            x = x + (gain * dt) * mix_copies(velocity, mixing)
    return GenerationMeasurement(model, len(mixing), tally, (v_min, v_max))


def physical_report(
    found: GenerationMeasurement,
    design: PhysicalDesign,
    settling_time_constants: float = 5.0,
    hidden_capacitance: float = HIDDEN_CAPACITANCE,
) -> dict[str, Any]:
    """Latency and energy of one generation at ``design``: latency = (1 − s_min) τ (the transient) +
    ``settling_time_constants`` × C_h/g τ (hidden nodes settle before release); energies per sample in joules."""
    model, copies = found.model, found.copies
    circuit = model.circuit
    lo, hi = design.supply_v
    v_min, v_max = (v * design.voltage_v for v in found.voltage_range)
    hidden_rc = hidden_capacitance / circuit.leak  # the hidden nodes settle before release
    settling_s, latency_s = latency(1 - model.sde.s_min, hidden_rc, settling_time_constants, design)
    shared = 1 + model.dim  # ground and the data nodes; each copy has its own hidden and driven nodes
    return {
        "design": design.to_dict(),
        "circuit_copies": copies,
        "num_nodes": shared + copies * (circuit.num_nodes - shared),
        "num_devices": copies * (circuit.edges.num_edges + circuit.hidden),  # devices and leak resistors
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "latency_s": latency_s,
        "settling_s": settling_s,
        **energies(found.tally, design),
        "peak_node_voltage_v": max(-v_min, v_max),
        "node_voltage_range_v": [v_min, v_max],
        "within_supply": lo <= v_min and v_max <= hi,
    }


def run_hardware(
    run: Run,
    n: int = 1000,
    design: PhysicalDesign | None = None,
    settling_time_constants: float = 5.0,
    fit_supply: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Latency and energy of one generation of a run's circuit (`measure_generation`, then
    `physical_report`) as the run samples it: its β scale, and for a conditional
    circuit its classes in turn with the configured guidance. ``fit_supply``: at the largest voltage scale V₀
    that keeps every node inside the design's supply (the design's V₀ ignored). ``progress``: see
    `measure_generation`."""
    config = run.config
    if "transient" not in run.model.integrators:
        raise ConfigError(
            f"{run.path} holds a crossbar score model; its speed and energy are `kirchhoffnet diffusion speed-energy`"
        )
    model = cast(CircuitScoreModel, run.model)
    design = design or PhysicalDesign()
    labels = torch.arange(n) % model.num_classes if model.num_classes else None
    guidance = config.sample.guidance if labels is not None else 0.0
    sharp = model.sharpened(config.sample.ode_beta_scale)
    found = measure_generation(sharp, n, config.sample.steps, config.seed, labels, guidance, progress)
    if fit_supply:  # the normalised voltages do not depend on V₀
        design = replace(design, voltage_v=voltage_scale_to_fit(found.voltage_range, design.supply_v))
    return {"guidance": guidance, **physical_report(found, design, settling_time_constants)}


def hardware_markdown(report: dict[str, Any], title: str) -> str:
    """A `run_hardware` report as a Markdown page."""
    q, design = format_quantity, report["design"]
    lo, hi = report["node_voltage_range_v"]
    rows = [
        ("node capacitance C₀ (a data node)", q(design["capacitance_f"], "F")),
        ("conductance scale G₀", q(design["conductance_s"], "S")),
        ("voltage scale V₀", q(design["voltage_v"], "V")),
        ("nodes / devices (incl. leak resistors)", f"{report['num_nodes']} / {report['num_devices']}"),
        ("circuit copies (classifier-free guidance)", f"{report['circuit_copies']} (w = {report['guidance']:g})"),
        ("hidden settling before release", q(report["settling_s"], "s")),
        ("**latency per generation**", f"**{q(report['latency_s'], 's')}**"),
        ("**energy per generation**", f"**{q(report['energy_j'], 'J')}**"),
        ("… loading the data capacitors", q(report["energy_load_j"], "J")),
        ("… delivered by active devices", q(report["energy_delivered_j"], "J")),
        ("heat in the devices and leaks", q(report["energy_dissipated_j"], "J")),
        ("rail-current bound", q(report["energy_rail_bound_j"], "J")),
        ("node voltages", f"{lo:.4g} V … {hi:.4g} V"),
        ("inside the supply", "yes" if report["within_supply"] else "**no**"),
    ]
    table = "\n".join(["| quantity | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    return f"# {title}\n\n{table}\n"


def evaluate_circuit(run: Run, model: CircuitScoreModel, progress: bool = True) -> dict[str, Any]:
    """KL of the circuit's samplers (configured and exact), the NLL of held-out points under its
    probability-flow density, the full transient with finite C_h, the hidden nodes' equilibrium residual, the
    hardware view, ``samples.png`` and ``evaluation.json``."""
    config = run.config
    n, seed = config.evaluate.num_samples, config.seed
    reference = reference_points(config)
    metrics: dict[str, Any] = {"data": config.data, "model": "kirchhoffnet", "num_samples": n}
    metrics["noise_floor"] = kl_report(reference_points(config, "floor"), reference)
    panels = {f"{config.data} (reference)": reference.numpy()}
    runs = [(solver, False) for solver in solver_names(model)] + [("pf-ode", True)] * (
        config.sample.ode_beta_scale != 1
    )
    for solver, exact in runs:
        x, info = sample_run(run, n, solver, seed=seed, exact=exact)
        name = f"{solver} (exact)" if exact else solver
        metrics[name] = {**kl_report(x, reference), **info}
        panels[name] = x.numpy()
        if progress:
            print(f"{name:16s} KL pooled {metrics[name]['kl_pooled']} ({info['wall_time_s']:.1f} s)", flush=True)
    sharp = model.sharpened(config.sample.ode_beta_scale)
    start = torch.randn(min(n, 2000), model.dim, generator=torch.Generator().manual_seed(seed))
    began = time.perf_counter()
    with single_thread():
        quasi = circuit_pf_ode(sharp, start, config.sample.steps)
        full = circuit_pf_ode(sharp, start, config.sample.steps, hidden_capacitance=HIDDEN_CAPACITANCE)
    metrics["full_transient"] = {
        "hidden_capacitance": HIDDEN_CAPACITANCE,
        "samples": len(start),
        "max_departure_from_quasi_static": float((full - quasi).abs().max()),
        "mean_departure_from_quasi_static": float((full - quasi).norm(dim=1).mean()),
        "wall_time_s": time.perf_counter() - began,
    }
    points = min(NLL_POINTS, n)
    held_out = held_out_points(config.data, config.evaluate.reference_seed, points)
    began = time.perf_counter()
    with single_thread():
        log_density = circuit_log_likelihood(model, held_out, NLL_STEPS)
    metrics["nll"] = {
        "nats": float(-log_density.mean()),
        "stderr": float(log_density.std() / len(log_density) ** 0.5),
        "points": points,
        "heun_steps": NLL_STEPS,
        "wall_time_s": time.perf_counter() - began,
    }
    if progress:
        print(f"NLL {metrics['nll']['nats']:.4f} ± {metrics['nll']['stderr']:.4f} nats", flush=True)
    with torch.no_grad():
        probe = sample_points(config.data, 1000, seed=seed)
        metrics["equilibrium_residual"] = {
            f"s={s:g}": float(model.circuit.residual(probe, torch.tensor(s)).mean()) for s in (0.01, 0.1, 0.5, 1.0)
        }
        metrics["hardware"] = run_hardware(run)
    save_figure(plots.sample_panels(panels), run.path / "samples.png")
    write_json_atomic(run.path / RUN_METRICS, metrics)
    return metrics
