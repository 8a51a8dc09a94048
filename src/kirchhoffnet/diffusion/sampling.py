"""Sampling a run's model with any solver of the registry ([`samplers`][kirchhoffnet.diffusion.samplers]), and its
speed/energy report ([`run`][kirchhoffnet.diffusion.run] loads the run, `evaluate` scores it)."""

from __future__ import annotations

import time
from typing import Any, cast

from pydantic import ValidationError
from torch import Tensor

from kirchhoffnet.config.diffusion import SampleConfig
from kirchhoffnet.diffusion.field import ScoreField, check_labels
from kirchhoffnet.diffusion.run import Run
from kirchhoffnet.diffusion.samplers import SOLVER_ALIASES, Draw, draw, program, resolve
from kirchhoffnet.diffusion.score import ScoreModel
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.rram.energy import SpeedEnergyModel, format_report, speed_energy_report

SOLVERS = tuple(SOLVER_ALIASES)
"""The solver names of the command line ([`SOLVER_ALIASES`][kirchhoffnet.diffusion.SOLVER_ALIASES]):
``euler``/``pf-ode`` the reverse SDE / probability-flow ODE solved digitally (a score circuit's ``pf-ode``: its own
transient), ``analog``/``analog-ode`` the same on the simulated RRAM loop; ``equation/integrator`` names any other."""


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
        solver: a name of [`SOLVERS`][kirchhoffnet.diffusion.sampling.SOLVERS] or ``equation/integrator``
            ([`samplers`][kirchhoffnet.diffusion.samplers]).
        prog_noise: programming noise σ of the chip (overrides the config's ``rram.prog_noise``). With a
            digital solver the programmed chip's effective weights are used, so noise can be studied
            apart from the analog loop. Crossbar models only.
        chip_seed: which chip (the programming randomness).
        steps: solver steps (default: ``sample.steps`` for digital, ``analog.steps`` for analog).
        exact: ignore the config's sharpening (``sample.ode_beta_scale``, ``sample.sde_score_gain``).
        verify_tolerance: program the chip with write-verify at this relative tolerance (overrides the
            config's ``rram.verify_tolerance``).
    """
    model: ScoreField = run.model
    equation, integrator = method = resolve(model, solver)
    if int(n) < 1:
        raise ConfigError(f"the number of samples must be positive, got {n}")
    config = run.config
    field = model if exact else sharpened(model, equation, config.sample)
    info: dict[str, Any] = {"solver": solver, "equation": equation, "integrator": integrator}
    device = config.rram
    if prog_noise is not None:
        device = device.model_copy(update={"prog_noise": prog_noise})
    if verify_tolerance is not None:
        device = device.model_copy(update={"verify_tolerance": check_tolerance(verify_tolerance)})
    on_chip = program(field, method, device, chip_seed)
    if on_chip is not None:
        info |= {"prog_noise": device.prog_noise, "verify_tolerance": device.verify_tolerance, "chip_seed": chip_seed}
    elif prog_noise is not None or verify_tolerance is not None:
        raise ConfigError(
            f"--prog-noise and --verify-tolerance program an RRAM chip, and {solver} ({equation}/{integrator}) of "
            f"the {model.backend} score model runs on none"
        )
    info["exact"] = exact
    loop = config.analog if steps is None else config.analog.model_copy(update={"steps": steps})
    request = Draw(
        int(n),
        steps or config.sample.steps,
        seed,
        check_labels(model.num_classes, labels, int(n)),
        config.sample.guidance if guidance is None else guidance,
        loop=loop,
        **(on_chip or {}),
    )
    start = time.perf_counter()
    x, measured = draw(field, method, request)
    info |= measured
    info["wall_time_s"] = time.perf_counter() - start
    return x, info


def sharpened(field: ScoreField, equation: str, sample: SampleConfig) -> ScoreField:
    """``field`` as the run samples ``equation``: the probability-flow ODE with β × ``sample.ode_beta_scale``,
    the reverse SDE with the score × ``sample.sde_score_gain``."""
    if equation == "pf-ode":
        return field.sharpened(sample.ode_beta_scale, 1.0)
    return field.sharpened(1.0, sample.sde_score_gain)


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
    """The speed/energy report of a run, written to ``speed_energy.txt`` (see `kirchhoffnet.rram.energy`).

    The digital step latencies are measured here (one trajectory; a batch of ``batch`` unless
    ``batch_time_s`` is given), the crossbar energy is simulated (unless given); every other number is an
    assumption, overridable through ``assumptions``.
    """
    config = run.config
    if "analog" not in run.model.integrators:
        raise ConfigError(
            f"{run.path} holds a {run.model.backend} score model, which has no RRAM loop: speed-energy models "
            "the RRAM loop; `kirchhoffnet diffusion evaluate` writes a score circuit's latency and energy"
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
    net = cast(ScoreModel, run.model).net  # the RRAM loop runs the crossbar network
    report = speed_energy_report(model, config.analog.integration_time_s, crossbar_energy_j, net.width, net.dim)
    write_text_atomic(run.path / "speed_energy.txt", format_report(report) + "\n")
    return report
