"""Sampling a run's model with any solver of the registry ([`samplers`][kirchhoffnet.diffusion.samplers]), and its
speed/energy report ([`run`][kirchhoffnet.diffusion.run] loads the run, `evaluate` scores it)."""

from __future__ import annotations

import time
from typing import Any, cast

import torch
from pydantic import ValidationError
from torch import Tensor

from kirchhoffnet.config.diffusion import SampleConfig
from kirchhoffnet.diffusion.analog import program_chip
from kirchhoffnet.diffusion.field import ScoreField, check_labels
from kirchhoffnet.diffusion.run import Run
from kirchhoffnet.diffusion.samplers import SOLVER_ALIASES, Draw, draw, program, resolve
from kirchhoffnet.diffusion.score import ScoreModel
from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.io import write_json_atomic, write_text_atomic
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
    read_noise: float | None = None,
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
        read_noise: relative σ of each crossbar read's conductance fluctuation (overrides ``rram.read_noise``);
            it acts on the analog loop's reads only.
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
    if read_noise is not None:
        if integrator != "analog":
            raise ConfigError(
                f"--read-noise acts on the analog loop's crossbar reads, and {solver} ({equation}/{integrator}) "
                "reads none; use --solver analog or analog-ode"
            )
        device = device.model_copy(update={"read_noise": check_read_noise(read_noise)})
    on_chip = program(field, method, device, chip_seed)
    if on_chip is not None:
        info |= {"prog_noise": device.prog_noise, "verify_tolerance": device.verify_tolerance, "chip_seed": chip_seed}
        if integrator == "analog":
            info["read_noise"] = device.read_noise
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


def check_read_noise(read_noise: float) -> float:
    """``read_noise`` if it is a valid relative standard deviation of a read (finite, ≥ 0, below 1)."""
    if not 0 <= read_noise < 1:
        raise ConfigError(f"the read noise is a relative standard deviation in [0, 1), got {read_noise}")
    return read_noise


def speed_energy(
    run: Run,
    batch_time_s: float | None = None,
    batch: int = 10_000,
    crossbar_power_w: float | None = None,
    assumptions: dict[str, Any] | None = None,
    solver: str = "analog",
    repeats: int = 3,
) -> dict[str, Any]:
    """The speed/energy account of a run (see `kirchhoffnet.rram.energy`), written to ``speed_energy.txt`` and
    ``speed_energy.json``.

    Measured here: the digital sampler's single-trajectory latency (the fastest of ``repeats`` runs, the machine
    being shared) and the wall time of a batch of ``batch`` (unless ``batch_time_s`` is given); simulated: the mean
    crossbar power of the loop on the programmed chip (unless given). A conditional model draws its classes in
    turn (sample k: class k mod classes) with the config's guidance. Every other number is an assumption,
    overridable through ``assumptions``.

    Args:
        solver: ``analog`` (reverse SDE, noise source on; digital baseline ``euler``) or ``analog-ode``
            (probability-flow ODE; baseline ``pf-ode``).
    """
    config = run.config
    if "analog" not in run.model.integrators:
        raise ConfigError(
            f"{run.path} holds a {run.model.backend} score model, which has no RRAM loop: speed-energy models "
            "the RRAM loop; `kirchhoffnet diffusion evaluate` writes a score circuit's latency and energy"
        )
    if solver not in ANALOG_BASELINES:
        raise ConfigError(unknown_choice("speed/energy solver", solver, ANALOG_BASELINES))
    digital = ANALOG_BASELINES[solver]
    _speed_energy_model(assumptions or {})  # a bad assumption is refused before minutes of measuring
    classes = run.model.num_classes

    def labels(n: int) -> Tensor | None:
        return torch.arange(n) % classes if classes else None

    if batch_time_s is None:
        batch_time_s = sample_run(run, batch, digital, seed=config.seed, labels=labels(batch))[1]["wall_time_s"]
    if crossbar_power_w is None:
        analog = sample_run(run, 1000, solver, seed=config.seed, labels=labels(1000))[1]
        crossbar_power_w = analog["mean_crossbar_power_w"]
    single_s = min(
        sample_run(run, 1, digital, seed=config.seed, labels=labels(1))[1]["wall_time_s"] for _ in range(repeats)
    )
    measured = {"digital_single_latency_s": single_s, "digital_batch": batch, "digital_batch_time_s": batch_time_s}
    model = _speed_energy_model({**measured, **(assumptions or {})})
    score_model = cast(ScoreModel, run.model)  # the RRAM loop runs the crossbar network
    stochastic = solver == "analog"
    equation = "reverse-sde" if stochastic else "pf-ode"
    field = cast(ScoreModel, sharpened(score_model, equation, config.sample))
    guided = classes > 0 and config.sample.guidance != 0
    report = speed_energy_report(
        model,
        config.analog.integration_time_s,
        float(crossbar_power_w),
        score_model.net.width,
        score_model.net.dim,
        stochastic=stochastic,
        branches=2 if guided else 1,
        integrator_time_constant_s=config.analog.capacitance_f / program_chip(field).crossbars[-1].siemens_per_unit,
        peak_loop_gain_per_s=peak_loop_gain(field, config.analog.integration_time_s, stochastic),
    )
    report["solver"], report["conditional"] = solver, bool(classes)
    write_text_atomic(run.path / "speed_energy.txt", format_report(report) + "\n")
    write_json_atomic(run.path / "speed_energy.json", report)
    return report


def _speed_energy_model(values: dict[str, Any]) -> SpeedEnergyModel:
    try:
        return SpeedEnergyModel(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"speed/energy assumption {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


ANALOG_BASELINES = {"analog": "euler", "analog-ode": "pf-ode"}
"""The analog solvers the speed/energy account models, each with the digital sampler of the same equation."""


def peak_loop_gain(model: ScoreModel, integration_time_s: float, stochastic: bool, points: int = 1001) -> float:
    """The largest output gain b(τ) = β(s) κ · amplitude · |output gain(s)| (halved for the ODE) of the loop that
    integrates in ``integration_time_s`` (`kirchhoffnet.diffusion.analog`), 1/s, on a grid of diffusion times."""
    sde = model.sde
    s = torch.linspace(sde.s_min, 1.0, points, dtype=torch.float64)
    kappa = (1.0 - sde.s_min) / integration_time_s
    gain = sde.beta(s) * kappa * model.net.amplitude * model.output_gain(s).abs()
    return float(gain.max()) * (1.0 if stochastic else 0.5)
