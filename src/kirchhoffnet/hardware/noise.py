"""Noise: thermal (Johnson, kT/C) noise as an Itô SDE through torchsde, and read noise on devices.

Thermal noise. Each device e is a noisy conductance: a white current source in parallel with it,
of two-sided spectral density ``2kT·γ·g_e`` (A²/Hz), where ``g_e`` is its small-signal
conductance and γ an excess-noise factor (1 for a resistor, about 2/3 for a long-channel MOSFET
in saturation). Node n's capacitor integrates the sources of its edges:

    C₀c_n dV_n = Σ_e ±I_e dT + Σ_e ±sqrt(2kTγ G₀g_e) dW_e(T)      (+ at dst_e, − at src_e).

In the normalised units of [`kirchhoffnet.hardware.units`][kirchhoffnet.hardware.units] (V = V₀v, T = τt, τ = C₀/G₀,
dW(T) = sqrt(τ)·dW(t)) this becomes

    dv_n = f_n(v) dt + (1/c_n) Σ_e ±sqrt(2 ε γ g_e) dW_e(t),        ε = kT/(C₀V₀²),

so the normalised diffusion coefficient of an edge is ``sqrt(2εγ g_e)/c``. For a single node with
a conductance g to ground, ``dv = −(g/c) v dt + sqrt(2εg)/c dW`` is an Ornstein–Uhlenbeck process
whose stationary variance is ε/c, i.e. ``kT/(C₀c)`` in volts²: the kT/C law. Because every edge
has its own Wiener process, a passive RC network of any topology reaches the equipartition
covariance ``kT·diag(1/C)``; per-node noise would not.

The small-signal conductance comes from the device's analytic slopes:
``g_e = (|∂i/∂v_src| + |∂i/∂v_dst|)/2``, which is exactly ``|∂i/∂(v_src − v_dst)|`` for a device
that depends on the voltage drop only (resistors, ShiftTanh1, ShiftRelu1) and the mean terminal
transconductance otherwise.

Read noise. A device's current fluctuates from one read to the next (1/f and random-telegraph
noise in RRAM and transistors); an inference lasts nanoseconds, far shorter than those
fluctuations' correlation times, so each device's current is scaled by a factor ``1 + σ_read·ξ``
drawn per inference (per sample and edge) and frozen during it.

The SDE is Itô and integrated by torchsde's Euler–Maruyama with a fixed step. The diffusion is
applied as a product with the Wiener increments (``f_and_g_prod``), which costs O(E·B) per step
instead of building an (N, E) matrix per sample, and the increments are drawn once per step
(`kirchhoffnet._brownian.SteppedBrownian`). Everything runs on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torchsde
from torch import Tensor, nn

from kirchhoffnet._brownian import SteppedBrownian
from kirchhoffnet._progress import bar
from kirchhoffnet.circuit import Circuit, Slice
from kirchhoffnet.errors import ConfigError, SolverError
from kirchhoffnet.hardware.analysis import Model, circuit_of
from kirchhoffnet.hardware.units import PhysicalDesign
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.solve.solver import Solver, check_time_grid


@dataclass(frozen=True)
class Noise:
    """Which noise to simulate.

    Attributes:
        thermal: include thermal (kT/C) noise at the design's temperature.
        excess_factor: γ, thermal noise relative to a resistor of the same conductance.
        read: relative standard deviation of each device's current, drawn per inference.
    """

    thermal: bool = True
    excess_factor: float = 1.0
    read: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.excess_factor) and self.excess_factor > 0):
            raise ConfigError(f"excess_factor must be finite and positive, got {self.excess_factor!r}")
        if not (math.isfinite(self.read) and 0.0 <= self.read <= 1.0):
            raise ConfigError(f"read noise is a relative standard deviation in [0, 1], got {self.read!r}")


_DENSE_INCIDENCE = 1 << 20  # incidence entries (nodes × edges) up to which the noise SDE multiplies densely


class SliceSDE(nn.Module):
    """One slice's node dynamics with thermal and read noise, in torchsde's batch-first layout.

    Args:
        piece: the slice.
        epsilon: ε·γ, the normalised thermal energy times the excess-noise factor (0 for none).
        read_factor: (B, E) per-sample current factors, or ``None``.
    """

    noise_type = "general"
    sde_type = "ito"

    def __init__(self, piece: Slice, epsilon: float, read_factor: Tensor | None, dtype: torch.dtype) -> None:
        super().__init__()
        self.piece = piece
        self.epsilon = float(epsilon)
        self.read_factor = None if read_factor is None else read_factor.T.contiguous()  # node-major (E, B)
        self.kernel = piece.kernel(dtype, piece.params.device)  # the circuit's own incidence and edge currents
        self.params = piece.params.to(dtype)
        # Σ_e ±x_e / c_n per node (+ into the destination, − out of the source), applied twice per step;
        # dense while it is small (a CSR product of a mid-sized circuit is slower than the dense one)
        incidence = self.kernel.incidence
        small = incidence.shape[0] * incidence.shape[1] <= _DENSE_INCIDENCE
        self.incidence = incidence.to_dense() if small and incidence.layout != torch.strided else incidence

    def f_and_g_prod(self, t: Tensor, y: Tensor, dw: Tensor) -> tuple[Tensor, Tensor]:
        """Drift f(v) (B, N) and the diffusion applied to the increments ``dw`` (B, E)."""
        current, d_src, d_dst = self.kernel.edge_currents(self.piece.device_family, self.params, y.T)
        if self.read_factor is not None:
            current = current * self.read_factor
            d_src, d_dst = d_src * self.read_factor, d_dst * self.read_factor
        drift = self._to_nodes(current)
        if self.epsilon == 0.0:
            return drift, torch.zeros_like(drift)
        conductance = 0.5 * (d_src.abs() + d_dst.abs())
        return drift, self._to_nodes(torch.sqrt(2.0 * self.epsilon * conductance) * dw.T)

    def _to_nodes(self, per_edge: Tensor) -> Tensor:
        """M·x for node-major per-edge ``x`` (E, B), returned batch-first (B, N) as torchsde keeps it."""
        if self.incidence.layout == torch.strided:
            return per_edge.T @ self.incidence.T  # one product, already batch-first
        return (self.incidence @ per_edge).T.contiguous()


def _seed(seed: int, slice_index: int, stream: int) -> int:
    return int(np.random.SeedSequence([int(seed), slice_index, stream]).generate_state(1)[0])


def simulate_noisy(
    model: Model,
    x: Tensor,
    design: PhysicalDesign,
    noise: Noise | None = None,
    *,
    dt: float = 1e-3,
    seed: int = 0,
    points_per_slice: int = 2,
) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
    """Run the circuit with noise: Euler–Maruyama over each slice, a fresh Brownian path per slice.

    Args:
        model: a Circuit, Flow or Network (a Flow is run forward, i.e. sampled).
        x: (B, d) inputs (encoded into volts by the circuit's encoding).
        design: physical scales; its capacitance, voltage scale and temperature set ε = kT/(C₀V₀²).
        noise: which noise (default thermal only).
        dt: Euler–Maruyama step in normalised time.
        seed: seeds the Brownian paths and the read-noise factors.
        points_per_slice: waveform samples kept per slice (≥ 2).

    Returns:
        ``(v, waves)``: (B, N) final voltages of the last slice, decoded by ``circuit.encoding`` as
        [`simulate`][kirchhoffnet.solve.simulate.simulate]'s, and ``(t (T,), v (T, B, N_k))`` per slice in volts.

    Raises:
        SolverError: the voltages became NaN or infinite (step too large for the circuit).
    """
    noise = noise or Noise()
    if not (math.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt must be a positive step in normalised time, got {dt!r}")
    if points_per_slice < 2:
        raise ConfigError(f"points_per_slice must be at least 2, got {points_per_slice}")
    circuit = circuit_of(model)
    dtype = next(circuit.parameters()).dtype
    # Euler–Maruyama is a fixed-step method: the same bound on the step count as any fixed-step solve
    check_time_grid(circuit.times, Solver("euler", step_size=dt), dtype, step_key="dt")
    epsilon = design.thermal_epsilon * noise.excess_factor if noise.thermal else 0.0
    state = circuit.input_state(x.to(dtype))  # node-major (N, B)
    waves = []
    saved: Tensor | None = None
    with torch.no_grad():
        for k in range(circuit.num_slices):
            piece = circuit.slice(k)
            state = circuit.resize(state, piece.num_state)
            state, wave = _noisy_slice(
                circuit, k, state.T.contiguous(), epsilon, noise.read, dt, seed, points_per_slice
            )
            waves.append(wave)
            if circuit.residual is not None:
                if k == circuit.residual[0]:
                    saved = state
                if k == circuit.residual[1] and saved is not None:
                    state = state + saved
    return circuit.encoding.decode(state.T), waves


def _noisy_slice(
    circuit: Circuit, k: int, y0: Tensor, epsilon: float, read: float, dt: float, seed: int, points: int
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    piece = circuit.slice(k)
    batch = y0.shape[0]
    t0, t1 = circuit.times[k], circuit.times[k + 1]
    factor = None
    if read > 0:
        generator = torch.Generator().manual_seed(_seed(seed, k, 1))
        factor = 1.0 + read * torch.randn(batch, piece.num_edges, generator=generator, dtype=y0.dtype)
    sde = SliceSDE(piece, epsilon, factor, y0.dtype)
    bm = SteppedBrownian((batch, piece.num_edges), y0.dtype, _seed(seed, k, 0))
    ts = torch.linspace(t0, t1, points, dtype=y0.dtype)
    # Fixed steps of dt from t0; the last one is cut short to end at t1 (inner output times are
    # linear interpolations between steps).
    ys = torchsde.sdeint(sde, y0, ts, bm=bm, method="euler", dt=min(dt, t1 - t0))
    if not bool(torch.isfinite(ys[-1]).all()):
        advice = f"reduce dt (now {dt:g}) or the device gains"
        if epsilon > 1:  # kT/C past the signal's own scale: the noise blew up, not the step
            advice = (
                f"the thermal noise ε = kT/(C₀V₀²) = {epsilon:.3g} is above the signal's scale (1); raise the "
                "capacitance or the voltage scale"
            )
        raise SolverError(
            f"slice {k} (t from {t0:g} to {t1:g}) ended with NaN or infinite voltages under noise; {advice}"
        )
    return ys[-1].T.contiguous(), (ts.double(), ys)


def noisy_outputs(model: Model, x: Tensor, design: PhysicalDesign, noise: Noise | None = None, **kwargs: Any) -> Tensor:
    """What the model outputs when its circuit is noisy: a Flow's samples, a Network's readout,
    a Circuit's final voltages. ``kwargs`` go to [`simulate_noisy`][kirchhoffnet.hardware.noise.simulate_noisy]."""
    v, _ = simulate_noisy(model, x, design, noise, **kwargs)
    if isinstance(model, Network) and model.readout is not None:
        with torch.no_grad():
            return model.readout(v)
    if isinstance(model, (Flow, Network, Circuit)):
        return v
    raise ConfigError(f"expected a Circuit, Flow or Network, got {type(model).__name__}")


def noise_sweep(
    model: Model,
    x: Tensor,
    designs: list[PhysicalDesign],
    noise: Noise | None = None,
    *,
    reference: Tensor | None = None,
    dt: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """How much noise each design adds to the outputs, against the same solver without noise.

    Args:
        model: a Circuit, Flow (sampled from base points ``x``) or Network.
        x: (B, d) inputs.
        designs: one entry per design (typically a range of capacitances).
        noise: which noise (default thermal only).
        reference: (M, k) samples of the target distribution; if given, each entry also holds the
            energy distance of the noisy outputs to it (a sampling metric for flows).
        dt: step of the SDE solver, as in [`simulate_noisy`][kirchhoffnet.hardware.noise.simulate_noisy].
        seed: as in [`simulate_noisy`][kirchhoffnet.hardware.noise.simulate_noisy]; every design sees the same random
            numbers.
        progress: a bar over the designs or, off a terminal, periodic lines (`kirchhoffnet._progress`).

    Returns:
        Per design: ``capacitance_f``, ``thermal_noise_rms_v`` (sqrt(kT/C₀)), ``output_rms_deviation_v``
        (RMS over samples and outputs of noisy − noiseless, volts), and with ``reference``
        ``energy_distance`` and ``energy_distance_noiseless``.
    """
    from kirchhoffnet.hardware.metrics import energy_distance

    quiet = Noise(thermal=False)
    rows = []
    clean = noisy_outputs(model, x, designs[0], quiet, dt=dt, seed=seed) if designs else x
    for design in bar(designs, desc="noise", unit="design", enabled=progress, leave=False):
        noisy = noisy_outputs(model, x, design, noise, dt=dt, seed=seed)
        row: dict[str, Any] = {
            "capacitance_f": design.capacitance_f,
            "voltage_v": design.voltage_v,
            "thermal_noise_rms_v": math.sqrt(design.thermal_epsilon) * design.voltage_v,
            "output_rms_deviation_v": float((noisy - clean).pow(2).mean().sqrt()) * design.voltage_v,
        }
        if reference is not None:
            row["energy_distance"] = energy_distance(noisy, reference)
            row["energy_distance_noiseless"] = energy_distance(clean, reference)
        rows.append(row)
    return rows
