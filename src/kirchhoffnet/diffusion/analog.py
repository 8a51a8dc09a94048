"""Sampling a score model on the simulated analog RRAM solver.

The chip holds the network's three layers; the closed loop (`kirchhoffnet.rram.loop`) runs the
reverse diffusion in physical time τ ∈ [0, T] with diffusion time s(τ) = 1 − (1 − s_min) τ / T, so the
loop gains are κ = (1 − s_min) / T times the digital step's coefficients:

    a = ½ β(s) κ,     b = β(s) κ · amplitude · score gain(s),     g = √(β(s) κ)

(for the probability-flow ODE b is halved and g = 0).

With ideal devices this is the digital sampler's equation, so the two agree up to the solver's step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kirchhoffnet.diffusion._threads import single_thread
from kirchhoffnet.diffusion.field import check_labels, guidance_gains
from kirchhoffnet.diffusion.score import ScoreModel
from kirchhoffnet.errors import ConfigError, unknown_choice
from kirchhoffnet.rram.chip import Chip
from kirchhoffnet.rram.device import RRAMDevice
from kirchhoffnet.rram.loop import ClosedLoop, Drive, LoopReport, LoopSettings

ANALOG_MODES = ("sde", "ode")


@dataclass
class AnalogRun:
    """Samples of one analog run, with the chip and what the loop measured."""

    samples: Tensor
    chip: Chip
    report: LoopReport


def program_chip(model: ScoreModel, device: RRAMDevice | None = None, seed: int = 0) -> Chip:
    """Program the model's three layers into crossbars; ``seed`` picks the chip."""
    return Chip([(w.detach(), None if b is None else b.detach()) for w, b in model.net.layer_weights()], device, seed)


@torch.no_grad()
def analog_sample(
    model: ScoreModel,
    n: int,
    chip: Chip | None = None,
    settings: LoopSettings | None = None,
    mode: str = "sde",
    seed: int = 0,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> AnalogRun:
    """``n`` samples from the analog loop running ``model`` on ``chip`` (ideal devices when None).

    Args:
        mode: ``sde`` (reverse SDE, noise injected) or ``ode`` (probability-flow ODE).
        seed: seeds the initial voltages, the injected noise and the read noise.
        labels: class per sample (or one for all) of a conditional model; −1 = unconditional.
        guidance: classifier-free guidance w; the loop then runs a conditional and an unconditional branch.

    Shapes:
        Returns samples (n, dim) float32.
    """
    if mode not in ANALOG_MODES:
        raise ConfigError(unknown_choice("analog mode", mode, ANALOG_MODES))
    if int(n) < 1:
        raise ConfigError(f"the number of samples must be positive, got {n}")
    settings = settings if settings is not None else LoopSettings()
    chip = chip if chip is not None else program_chip(model)
    labels = check_labels(model.net.num_classes, labels, int(n))
    net, sde = model.net, model.sde
    stochastic = mode == "sde"
    kappa = (1.0 - sde.s_min) / settings.integration_time_s

    def diffusion_time(tau: float) -> Tensor:
        return torch.tensor(1.0 - kappa * tau, dtype=torch.float64)

    def coefficients(tau: float) -> tuple[float, float, float]:
        s = diffusion_time(tau)
        beta = float(sde.beta(s)) * kappa
        gain = beta * net.amplitude * float(model.output_gain(s)) * (1.0 if stochastic else 0.5)
        return 0.5 * beta, gain, beta**0.5 if stochastic else 0.0

    def time_drive(tau: float) -> Tensor:
        return net.embedding(diffusion_time(tau).float())

    class_drive = net.class_drive(labels)
    drives: list[tuple[float, Drive]] = [(1.0, time_drive)]
    if class_drive is not None:  # the guided copies as branches, the unconditional one with its class sources at 0
        gains = guidance_gains(labels, guidance)
        drives = [(gains[0], lambda tau: time_drive(tau) + class_drive)]
        if len(gains) > 1:
            drives.append((gains[1], time_drive))
    loop = ClosedLoop(chip, coefficients, drives, settings, read_seed=seed + 1)
    x0 = torch.randn(int(n), net.dim, generator=torch.Generator().manual_seed(seed))
    with single_thread():
        samples = loop.run(x0, stochastic, noise_seed=seed + 2)
    return AnalogRun(samples, chip, loop.report)
