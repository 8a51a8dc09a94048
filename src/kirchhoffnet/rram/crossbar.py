"""A crossbar of RRAM differential pairs: programming a weight matrix into conductances and reading it.

Each layer ``y = W x + b`` becomes one crossbar with ``in + 1`` rows (the last row is driven by a constant
input 1 and stores the bias) and ``out`` columns of differential pairs. Programming maps the layer's
largest |weight| to G_max, rounds to the device's levels, then applies the frozen non-idealities in the
order they happen on a chip: write noise (optionally write-verified: cells whose read-back misses the
target by more than a tolerance are rewritten), stuck cells, drift, and the physical clipping to
[G_min, G_max]. Everything random comes from one generator, so a seed is a chip.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.rram.device import NoiseKind, RRAMDevice


def relative_noise(shape: torch.Size, sigma: float, kind: NoiseKind, generator: torch.Generator) -> Tensor:
    """Multiplicative factors of mean 1: 1 + σ z (gaussian) or exp(σ z − σ²/2) (lognormal)."""
    z = torch.randn(shape, generator=generator, dtype=torch.float64)
    return 1 + sigma * z if kind == "gaussian" else torch.exp(sigma * z - 0.5 * sigma * sigma)


def relative_variance(sigma: float, kind: NoiseKind) -> float:
    """Variance of the factor drawn by `relative_noise`."""
    return sigma * sigma if kind == "gaussian" else float(torch.expm1(torch.tensor(sigma * sigma, dtype=torch.float64)))


class Crossbar:
    """One layer programmed into RRAM differential pairs.

    Args:
        weight: (out, in) target weights.
        bias: (out,) target biases or None.
        device: the cells' behaviour.
        generator: draws the chip's frozen randomness (write noise, stuck cells, drift exponents).

    Attributes:
        g_pos_s, g_neg_s: (out, in + 1) programmed conductances in siemens (last column: bias row).
        siemens_per_unit: conductance difference that represents a weight of 1.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, device: RRAMDevice, generator: torch.Generator) -> None:
        if weight.ndim != 2 or (bias is not None and bias.shape != (weight.shape[0],)):
            raise ConfigError(
                f"a crossbar needs a (out, in) weight and an (out,) bias, got {tuple(weight.shape)} and "
                f"{None if bias is None else tuple(bias.shape)}"
            )
        self.device = device
        self.has_bias = bias is not None
        column = bias if bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
        target = torch.cat([weight, column.unsqueeze(1)], dim=1).detach().to(torch.float64)
        if not bool(torch.isfinite(target).all()):
            raise ConfigError("cannot program NaN or infinite weights into a crossbar")
        w_max = float(target.abs().max())
        span = device.g_max_s - device.g_min_s
        self.siemens_per_unit = span / w_max if w_max > 0 else span
        magnitude = target.abs() * self.siemens_per_unit
        self.target_pos_s = device.g_min_s + torch.where(target > 0, magnitude, 0.0)
        self.target_neg_s = device.g_min_s + torch.where(target < 0, magnitude, 0.0)
        self.g_pos_s = self._program(self.target_pos_s, generator)
        self.g_neg_s = self._program(self.target_neg_s, generator)

    def _program(self, target: Tensor, generator: torch.Generator) -> Tensor:
        d = self.device
        g = target
        if d.levels is not None:
            step = (d.g_max_s - d.g_min_s) / (d.levels - 1)
            g = d.g_min_s + torch.round((g - d.g_min_s) / step) * step
        if d.prog_noise > 0:
            g = self._write(g, generator)
        if d.stuck_off_fraction > 0 or d.stuck_on_fraction > 0:
            u = torch.rand(g.shape, generator=generator, dtype=torch.float64)
            g = torch.where(u < d.stuck_off_fraction, d.g_min_s, g)
            g = torch.where(
                (u >= d.stuck_off_fraction) & (u < d.stuck_off_fraction + d.stuck_on_fraction), d.g_max_s, g
            )
        if d.drift_nu > 0 or d.drift_nu_std > 0:
            nu = d.drift_nu + d.drift_nu_std * torch.randn(g.shape, generator=generator, dtype=torch.float64)
            g = g * (d.drift_time_s / d.drift_t0_s) ** (-nu.clamp(min=0))
        return g.clamp(d.g_min_s, d.g_max_s)

    def _write(self, target: Tensor, generator: torch.Generator) -> Tensor:
        """Noisy writes of ``target``; with write-verify, each cell whose read-back (one read, with read
        noise) is off by more than the tolerance is rewritten, up to ``verify_max_writes`` writes."""
        d = self.device
        g = target * relative_noise(target.shape, d.prog_noise, d.prog_noise_kind, generator)
        if d.verify_tolerance is None:
            return g
        for _ in range(d.verify_max_writes - 1):
            read = g
            if d.read_noise > 0:
                read = g * relative_noise(g.shape, d.read_noise, d.read_noise_kind, generator)
            miss = (read - target).abs() > d.verify_tolerance * target
            if not bool(miss.any()):
                break
            rewrite = target * relative_noise(target.shape, d.prog_noise, d.prog_noise_kind, generator)
            g = torch.where(miss, rewrite, g)
        return g

    @property
    def shape(self) -> tuple[int, int]:
        """(out, in) of the stored layer, bias row excluded."""
        return self.g_pos_s.shape[0], self.g_pos_s.shape[1] - 1

    def effective(self) -> tuple[Tensor, Tensor | None]:
        """The weights and bias the programmed chip computes with (no read noise), float64."""
        full = (self.g_pos_s - self.g_neg_s) / self.siemens_per_unit
        return full[:, :-1], full[:, -1] if self.has_bias else None

    def read_std(self, x: Tensor) -> Tensor:
        """Standard deviation of each output (weight units) from independent read fluctuations of every cell.

        The output current sums (G⁺ − G⁻) x over a column; each cell's fluctuation has variance
        v G² with v the read-noise variance, so the output's is v Σ (G⁺² + G⁻²) x².

        Shapes:
            x: (B, in). Returns (B, out).
        """
        v = relative_variance(self.device.read_noise, self.device.read_noise_kind)
        squares = (self.g_pos_s.square() + self.g_neg_s.square()) * (v / self.siemens_per_unit**2)
        weight_sq, bias_sq = squares[:, :-1].to(x.dtype), squares[:, -1].to(x.dtype)
        return torch.sqrt(x.square() @ weight_sq.t() + bias_sq)

    def power_w(self, v_in: Tensor) -> Tensor:
        """Power dissipated in the cells for input voltages ``v_in`` (bias row at the unit voltage), watts.

        Shapes:
            v_in: (B, in + 1) volts, last column the bias row's voltage. Returns (B,).
        """
        conductance = (self.g_pos_s + self.g_neg_s).sum(dim=0).to(v_in.dtype)  # per row: all its cells in parallel
        return v_in.square() @ conductance
