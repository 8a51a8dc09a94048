"""Diffusion run directories: build and load score models, sample them with any solver, report their
speed and energy (:mod:`.evaluate` scores them).

A diffusion run is a run of the shared trainer (``kirchhoffnet train configs/diffusion/ring.yaml``, see
:class:`~kirchhoffnet.tasks.diffusion.DiffusionTask`): ``config.yaml``, ``checkpoint.pt``,
``model.safetensors`` (the score model with its spec), ``metrics.json`` and plots; the latent task adds
its VAE, judge and latents. ``kirchhoffnet diffusion evaluate`` adds ``evaluation.json``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from kirchhoffnet.checkpoint import MODEL_KINDS, RUN_MODEL
from kirchhoffnet.config import DiffusionConfig, parse_config, preflight
from kirchhoffnet.diffusion.analog import analog_sample, program_chip
from kirchhoffnet.diffusion.checkpoint import load_state, read_spec
from kirchhoffnet.diffusion.sample import DIGITAL_SOLVERS, sample
from kirchhoffnet.diffusion.score import ScoreModel, ScoreNet
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.diffusion.score_circuit.sample import CIRCUIT_SOLVERS, circuit_sample
from kirchhoffnet.diffusion.sde import VPSDE
from kirchhoffnet.errors import CheckpointError, ConfigError, KirchhoffError, unknown_choice
from kirchhoffnet.io import read_tensors, write_text_atomic
from kirchhoffnet.rram.energy import SpeedEnergyModel, format_report, speed_energy_report
from kirchhoffnet.yamlfile import read_yaml_mapping

RUN_CONFIG = "config.yaml"
RUN_METRICS = "evaluation.json"
"""What ``kirchhoffnet diffusion evaluate`` writes (the trainer's ``metrics.json`` is the training's)."""
SCORE_KINDS = {"crossbar": "score-model", "kirchhoffnet": "score-circuit"}
"""``model.kind`` of the config → ``kind`` of the checkpoint's spec."""
SOLVERS = (*DIGITAL_SOLVERS, "analog", "analog-ode")
"""``euler``/``pf-ode``: digital reverse SDE / probability-flow ODE; ``analog``/``analog-ode``: the
simulated RRAM loop solving the reverse SDE / the probability-flow ODE."""


@dataclass
class Run:
    """A trained run loaded from its directory."""

    path: Path
    config: DiffusionConfig
    model: ScoreModel | CircuitScoreModel


def build_model(config: DiffusionConfig) -> ScoreModel | CircuitScoreModel:
    """An untrained score model as the config describes it (initial weights from ``config.seed``), or the
    model of ``score_matching.init_from`` to fine-tune."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    sde = VPSDE(**config.sde.model_dump())
    kwargs = {"dim": 2, "num_classes": config.num_classes, "generator": generator, **config.model.model_dump()}
    kind = kwargs.pop("kind")
    model = (
        CircuitScoreModel(ScoreCircuit(**kwargs), sde)
        if kind == "kirchhoffnet"
        else ScoreModel(ScoreNet(**kwargs), sde)
    )
    start = config.score_matching.init_from
    if start is not None:
        if not (Path(start) / RUN_MODEL).is_file():
            raise ConfigError(
                f"score_matching.init_from: {Path(start) / RUN_MODEL} does not exist; give a diffusion run directory"
            )
        load_state(model, Path(start) / RUN_MODEL, SCORE_KINDS[kind])
    return model


def load_model(path: Path, config: DiffusionConfig) -> ScoreModel | CircuitScoreModel:
    """The score model of a checkpoint, rebuilt from the checkpoint's own spec, which must be of the
    config's ``model.kind``."""
    kind = SCORE_KINDS[config.model.kind]
    sections = {"circuit" if kind == "score-circuit" else "net": ScoreCircuit if kind == "score-circuit" else ScoreNet}
    spec = read_spec(path, kind, {**sections, "sde": VPSDE})
    try:
        model = CircuitScoreModel.from_spec(spec) if kind == "score-circuit" else ScoreModel.from_spec(spec)
    except KirchhoffError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_state(model, path, kind)
    return model


def is_diffusion_run(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a run directory of a diffusion config (its checkpoint holds a score model)."""
    model = Path(path) / RUN_MODEL
    if not ((Path(path) / RUN_CONFIG).is_file() and model.is_file()):
        return False
    try:
        return read_tensors(model)[0].get("kind") in SCORE_KINDS.values()
    except KirchhoffError:
        return False


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """The config and trained model of a diffusion run directory."""
    path = Path(run_dir)
    if not (path / RUN_CONFIG).is_file() or not (path / RUN_MODEL).is_file():
        raise CheckpointError(
            f"{path} is not a trained diffusion run directory (needs {RUN_CONFIG} and {RUN_MODEL}); "
            "create one with `kirchhoffnet train configs/diffusion/ring.yaml --out DIR`"
        )
    found = read_tensors(path / RUN_MODEL)[0].get("kind")
    if found in MODEL_KINDS:
        raise CheckpointError(
            f"{path} is a run of a KirchhoffNet task (its model is a {found}), not of a diffusion config; "
            "give it to `kirchhoffnet eval|sample|hw|spice`"
        )
    config = parse_config(read_yaml_mapping(path / RUN_CONFIG, empty={}), str(path / RUN_CONFIG))
    if not isinstance(config, DiffusionConfig):
        raise CheckpointError(f"{path / RUN_CONFIG} is a {config.task} config, not a diffusion one")
    preflight(config, training=False)
    return Run(path, config, load_model(path / RUN_MODEL, config))


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
