"""The continuous-time closed loop of the analog solver, simulated as an SDE (torchsde) or ODE (torchdiffeq).

Circuit (Yang et al., arXiv 2404.05648, Fig. 1): the state x is the voltage on integrator capacitors
(V = v_unit · x). It drives crossbar 1 (column currents → transimpedance amplifiers), ReLU, crossbar 2,
ReLU, crossbar 3; the hidden nodes also receive embedding voltages from signal sources. The output
currents, a state feedback and an injected noise source are summed into the integrators:

    dx/dτ = a(τ) x + b(τ) y(x, τ) − x / (A τ_int) + g(τ) ξ(τ),      τ ∈ [0, T] physical seconds,

with y the network output, a, b, g time-varying gains set by the schedule (programmable-gain
amplifiers in hardware), A the integrator op-amp's finite DC gain (a leak; ∞ by default), and ξ white
noise. Each read of a crossbar adds its read noise, held for ``read_noise_correlation_s`` (the read
circuit's bandwidth), so the simulated physics does not depend on the solver's step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torchsde
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torchdiffeq import odeint

from kirchhoffnet._brownian import SteppedBrownian
from kirchhoffnet.circuit.power import integrate
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.rram.chip import Chip

Coefficients = Callable[[float], tuple[float, float, float]]
"""τ (s) → (a (1/s), b (1/s), g (1/√s)) of the loop equation."""

Drive = Callable[[float], Tensor]
"""τ (s) → voltages (in state units) added at the hidden nodes: (1 or B, width)."""


class LoopSettings(BaseModel):
    """Physical constants of the analog integrator and how its simulation is stepped."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    integration_time_s: float = Field(
        default=1e-3, gt=0, description="Physical duration T of one reverse-diffusion run, seconds."
    )
    capacitance_f: float = Field(
        default=1e-9, gt=0, description="Integrator capacitance C, farads (sets the integrator current)."
    )
    voltage_per_unit_v: float = Field(
        default=0.1, gt=0, description="Voltage representing a state or activation of 1, volts."
    )
    opamp_gain: float | None = Field(
        default=None, gt=1, description="Integrator op-amp DC gain A (leak 1/(A τ_int)); null = ideal."
    )
    saturation_v: float | None = Field(
        default=None, gt=0, description="Hidden amplifiers clip at ± this voltage; null = no rails."
    )
    read_noise_correlation_s: float = Field(
        default=1e-7,
        gt=0,
        description="Time a read-noise sample persists (≈ 1 / (2 × read-circuit bandwidth)), seconds.",
    )
    steps: int = Field(
        default=10_000, ge=1, description="Solver steps over T (the simulation's resolution, not the hardware's)."
    )
    sde_method: Literal["euler"] = Field(default="euler", description="torchsde method for the stochastic loop.")
    ode_method: Literal["euler", "midpoint", "rk4", "dopri5"] = Field(
        default="euler", description="torchdiffeq method for the noise-free (probability-flow) loop."
    )


@dataclass
class LoopReport:
    """What one simulated run measured.

    Attributes:
        crossbar_energy_j: energy dissipated in the RRAM cells, averaged per trajectory, joules.
        mean_crossbar_power_w: that energy over T, watts.
        peak_hidden_v: largest hidden-node voltage reached, volts.
        evaluations: network evaluations made by the solver.
    """

    crossbar_energy_j: float = 0.0
    mean_crossbar_power_w: float = 0.0
    peak_hidden_v: float = 0.0
    evaluations: int = 0
    power_trace: list[tuple[float, float]] = field(default_factory=list, repr=False)


class ClosedLoop(torch.nn.Module):
    """The analog loop as a torchsde SDE (``f``, ``g``) whose network runs on a programmed
    [`Chip`][kirchhoffnet.rram.Chip].

    Args:
        chip: the network's layers as crossbars, first to last (any number ≥ 1); every layer but the
            last is followed by the drive and a ReLU, as in the score network (three layers).
        coefficients: the schedule a(τ), b(τ), g(τ).
        drives: (weight, drive) pairs; the output is Σ weight · network(drive). One pair for plain
            sampling, two for classifier-free guidance (conditional and unconditional drive).
        settings: physical constants.
        read_seed: seeds the read noise.
    """

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(
        self,
        chip: Chip,
        coefficients: Coefficients,
        drives: Sequence[tuple[float, Drive]],
        settings: LoopSettings,
        read_seed: int = 0,
    ) -> None:
        super().__init__()
        if not chip.crossbars:
            raise ConfigError("the analog loop needs a chip with at least one crossbar")
        self.chip, self.coefficients, self.drives, self.settings = chip, coefficients, list(drives), settings
        self.weights = chip.effective()
        self._generator = torch.Generator().manual_seed(read_seed)
        self._read_epoch = -1
        self._read_z: list[list[Tensor]] = []
        self._clip = None if settings.saturation_v is None else settings.saturation_v / settings.voltage_per_unit_v
        self._leak = 0.0 if settings.opamp_gain is None else 1.0 / (settings.opamp_gain * settings.integration_time_s)
        self.report = LoopReport()

    def _read_noise(self, t: float, batch: int) -> list[list[Tensor]]:
        epoch = int(t / self.settings.read_noise_correlation_s)
        if epoch != self._read_epoch or len(self._read_z[0][0]) != batch:
            self._read_epoch = epoch
            self._read_z = [
                [torch.randn(batch, c.shape[0], generator=self._generator) for c in self.chip.crossbars]
                for _ in self.drives
            ]
        return self._read_z

    def network(self, t: float, x: Tensor) -> Tensor:
        """Σ weight · (crossbar L ∘ ReLU ∘ … ∘ ReLU ∘ crossbar 1) with the drive added before each ReLU.

        Shapes:
            x: (B, dim). Returns (B, dim).
        """
        noisy = self.chip.has_read_noise
        z = self._read_noise(t, len(x)) if noisy else None
        v_unit = self.settings.voltage_per_unit_v
        ones = torch.ones(len(x), 1, dtype=x.dtype)
        total = torch.zeros_like(x)
        power = torch.zeros(len(x), dtype=torch.float64)
        peak = 0.0
        last = len(self.chip.crossbars) - 1
        for i, (weight, drive) in enumerate(self.drives):
            h = x
            for k, (crossbar, (w, b)) in enumerate(zip(self.chip.crossbars, self.weights, strict=True)):
                power += crossbar.power_w((torch.cat([h, ones], dim=1) * v_unit).to(torch.float64))
                out = torch.nn.functional.linear(h, w, b)
                if z is not None:
                    out = out + crossbar.read_std(h) * z[i][k]
                if k < last:
                    out = torch.relu(out + drive(t))
                    if self._clip is not None:
                        out = out.clamp(max=self._clip)
                    peak = max(peak, float(out.max()) * v_unit)
                h = out
            total = total + weight * h
        self.report.power_trace.append((t, float(power.mean())))
        self.report.peak_hidden_v = max(self.report.peak_hidden_v, peak)
        self.report.evaluations += 1
        return total

    def f(self, t: Tensor, y: Tensor) -> Tensor:
        tau = float(t)
        a, b, _ = self.coefficients(tau)
        return (a - self._leak) * y + b * self.network(tau, y)

    def g(self, t: Tensor, y: Tensor) -> Tensor:
        return torch.full_like(y, self.coefficients(float(t))[2])

    def forward(self, t: Tensor, y: Tensor) -> Tensor:  # torchdiffeq's signature
        return self.f(t, y)

    def run(self, x0: Tensor, stochastic: bool, noise_seed: int = 0) -> Tensor:
        """Integrate from ``x0`` at τ = 0 to τ = T; returns the final state and fills `report`.

        Shapes:
            x0: (B, dim). Returns (B, dim).
        """
        s = self.settings
        self.report = LoopReport()
        ts = torch.tensor([0.0, s.integration_time_s], dtype=x0.dtype)
        dt = s.integration_time_s / s.steps
        if not (0.0 < float(ts[1]) < math.inf and float(torch.tensor(dt, dtype=x0.dtype)) > 0.0):
            raise ConfigError(  # a horizon or step that rounds to 0 or inf in the state's dtype: no solver can run
                f"analog.integration_time_s = {s.integration_time_s:g} over {s.steps} steps is not representable "
                f"in {str(x0.dtype).removeprefix('torch.')}; use a physical time such as 1e-3 s"
            )
        with torch.no_grad():
            if stochastic:
                bm = SteppedBrownian((len(x0), x0.shape[1]), x0.dtype, noise_seed)
                path = torchsde.sdeint(self, x0, ts, bm=bm, method=s.sde_method, dt=dt)
            else:
                options = {"step_size": dt} if s.ode_method != "dopri5" else None
                path = odeint(self, x0, ts, method=s.ode_method, options=options, rtol=1e-6, atol=1e-7)
        final = path[-1]
        if not bool(torch.isfinite(final).all()):
            raise SolverError(
                "the analog loop's state became NaN or infinite; reduce the programming noise, check the "
                "chip's weights, or use more steps"
            )
        trace = torch.tensor(self.report.power_trace, dtype=torch.float64)
        order = torch.argsort(trace[:, 0])
        energy = float(integrate(trace[order, 1], trace[order, 0])) if len(trace) > 1 else 0.0
        self.report.crossbar_energy_j = energy
        self.report.mean_crossbar_power_w = energy / s.integration_time_s
        return final
