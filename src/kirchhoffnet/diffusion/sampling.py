"""Sampling a run's model with any solver, and its speed/energy report (:mod:`.run` loads the run,
:mod:`.evaluate` scores it)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from torch import Tensor

from kirchhoffnet.diffusion.analog import analog_sample, program_chip
from kirchhoffnet.diffusion.config import DiffusionConfig
from kirchhoffnet.diffusion.run import Run
from kirchhoffnet.diffusion.sample import DIGITAL_SOLVERS, sample
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.score_circuit.sample import CIRCUIT_SOLVERS, circuit_sample
from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.rram.energy import SpeedEnergyModel, format_report, speed_energy_report

SOLVERS = (*DIGITAL_SOLVERS, "analog", "analog-ode")
"""``euler``/``pf-ode``: digital reverse SDE / probability-flow ODE; ``analog``/``analog-ode``: the
simulated RRAM loop solving the reverse SDE / the probability-flow ODE."""


def sample_run(
    run: Run,
    n: int,
    solver: str = "euler",
    prog_noise: float | None = None,
    seed: int = 0,
    chip_seed: int = 0,
    steps: int | None = None,
    labels: Tensor | None = None,
    guidance: float | None = None,
    exact: bool = False,
    verify_tolerance: float | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """``n`` samples of a run's model by ``solver``; returns them with what the run measured.

    Args:
        prog_noise: programming noise σ of the chip (overrides the config's ``rram.prog_noise``). With a
            digital solver the programmed chip's effective weights are used, so noise can be studied
            apart from the analog loop.
        chip_seed: which chip (the programming randomness).
        steps: solver steps (default: ``sample.steps`` for digital, ``analog.steps`` for analog).
        exact: ignore the config's sharpening (``sample.ode_beta_scale``, ``sample.sde_score_gain``).
        verify_tolerance: program the chip with write-verify at this relative tolerance (overrides the
            config's ``rram.verify_tolerance``).
    """
    if solver not in SOLVERS:
        raise ConfigError(unknown_choice("solver", solver, SOLVERS))
    config = run.config
    ode = solver in ("pf-ode", "analog-ode")
    guidance = config.sample.guidance if guidance is None else guidance
    if isinstance(run.model, CircuitScoreModel):
        return _sample_circuit(run.model, config, n, solver, prog_noise, seed, steps, exact, labels, guidance)
    model = run.model
    if not exact:
        model = (
            model.sharpened(config.sample.ode_beta_scale, 1.0)
            if ode
            else model.sharpened(1.0, config.sample.sde_score_gain)
        )
    device = config.rram
    if prog_noise is not None:
        device = device.model_copy(update={"prog_noise": prog_noise})
    if verify_tolerance is not None:
        device = device.model_copy(update={"verify_tolerance": check_tolerance(verify_tolerance)})
    chip = program_chip(model, device, seed=chip_seed)
    start = time.perf_counter()
    info: dict[str, Any] = {
        "solver": solver,
        "prog_noise": device.prog_noise,
        "verify_tolerance": device.verify_tolerance,
        "chip_seed": chip_seed,
        "exact": exact,
    }
    if solver in DIGITAL_SOLVERS:
        weights = chip.effective() if device != type(device)() else None
        x = sample(model, n, solver, steps or config.sample.steps, seed, labels, guidance, weights)
    else:
        settings = config.analog if steps is None else config.analog.model_copy(update={"steps": steps})
        mode = "sde" if solver == "analog" else "ode"
        result = analog_sample(model, n, chip, settings, mode, seed, labels, guidance)
        x = result.samples
        info["crossbar_energy_j"] = result.report.crossbar_energy_j
        info["mean_crossbar_power_w"] = result.report.mean_crossbar_power_w
        info["peak_hidden_v"] = result.report.peak_hidden_v
    info["wall_time_s"] = time.perf_counter() - start
    return x, info


def _sample_circuit(
    model: CircuitScoreModel,
    config: DiffusionConfig,
    n: int,
    solver: str,
    prog_noise: float | None,
    seed: int,
    steps: int | None,
    exact: bool,
    labels: Tensor | None,
    guidance: float,
) -> tuple[Tensor, dict[str, Any]]:
    """:func:`sample_run` for the KirchhoffNet score circuit: its own transient (``pf-ode``) or the reverse SDE."""
    if solver not in CIRCUIT_SOLVERS or prog_noise is not None:
        raise ConfigError(
            f"the KirchhoffNet score circuit samples with --solver euler or pf-ode and no --prog-noise "
            f"(got {solver!r}{'' if prog_noise is None else f', prog_noise {prog_noise}'}); analog and chips are RRAM"
        )
    if solver == "pf-ode" and not exact:
        model = model.sharpened(config.sample.ode_beta_scale)
    start = time.perf_counter()
    x = circuit_sample(model, n, solver, steps or config.sample.steps, seed, labels=labels, guidance=guidance)
    info = {"solver": solver, "exact": exact, "wall_time_s": time.perf_counter() - start}
    return x, info


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` if it is a valid write-verify tolerance (a positive fraction of the target)."""
    if not tolerance > 0:
        raise ConfigError(f"the write-verify tolerance must be a positive fraction of the target, got {tolerance}")
    return tolerance


def speed_energy(
    run: Run,
    batch_time_s: float | None = None,
    batch: int = 10_000,
    crossbar_energy_j: float | None = None,
    assumptions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The speed/energy report of a run, written to ``speed_energy.txt`` (see :mod:`kirchhoffnet.rram.energy`).

    The digital step latencies are measured here (one trajectory; a batch of ``batch`` unless
    ``batch_time_s`` is given), the crossbar energy is simulated (unless given); every other number is an
    assumption, overridable through ``assumptions``.
    """
    config = run.config
    if isinstance(run.model, CircuitScoreModel):
        raise ConfigError(
            f"{run.path} holds a KirchhoffNet score circuit: speed-energy models the RRAM loop; "
            "`kirchhoffnet diffusion evaluate` writes the circuit's latency and energy"
        )
    steps = config.sample.steps
    if batch_time_s is None:
        batch_time_s = sample_run(run, batch, "euler", seed=config.seed)[1]["wall_time_s"]
    if crossbar_energy_j is None:
        crossbar_energy_j = sample_run(run, 1000, "analog", seed=config.seed)[1]["crossbar_energy_j"]
    single_s = sample_run(run, 1, "euler", seed=config.seed)[1]["wall_time_s"]
    measured = {
        "digital_steps": steps,
        "digital_step_latency_s": single_s / steps,
        "digital_batch": batch,
        "digital_batch_step_latency_s": batch_time_s / steps,
    }
    try:
        model = SpeedEnergyModel(**{**measured, **(assumptions or {})})
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"speed/energy assumption {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    net = run.model.net
    report = speed_energy_report(model, config.analog.integration_time_s, crossbar_energy_j, net.width, net.dim)
    write_text_atomic(run.path / "speed_energy.txt", format_report(report) + "\n")
    return report
