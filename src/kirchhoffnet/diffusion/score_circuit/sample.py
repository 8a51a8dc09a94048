"""Generation by the score circuit: its own transient (the probability-flow ODE) or the reverse SDE on its currents.

The digital samplers of :mod:`kirchhoffnet.diffusion.sample` step a score function; here the probability-flow
ODE is the circuit's transient itself, with the hidden nodes at equilibrium or integrated on their own
capacitors C_h, and the reverse SDE reads the circuit's score with each step's settle started from the last.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kirchhoffnet.diffusion.sample import check_labels, check_request, reference_euler, time_grid
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel, guided_copies, mix_copies
from kirchhoffnet.diffusion.threads import single_thread
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.progress import bar

CIRCUIT_SOLVERS = ("pf-ode", "euler")
"""The score circuit's samplers, its own transient first: the probability-flow ODE and the reverse SDE (the
:data:`~kirchhoffnet.diffusion.sample.DIGITAL_SOLVERS`, run on the circuit)."""

HIDDEN_CAPACITANCE = 0.01
"""C_h / C_x of the full transients (evaluation and SPICE check): the hidden nodes 100× faster than the data nodes."""


def circuit_pf_ode(
    model: CircuitScoreModel,
    x: Tensor,
    steps: int,
    hidden_capacitance: float = 0.0,
    progress: bool = False,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> Tensor:
    """Generation as the circuit's own transient: Euler on the data (and hidden) nodes from s = 1 to s_min.

    With ``hidden_capacitance`` 0 the hidden nodes are at equilibrium at every step (the quasi-static
    limit, exactly the probability-flow ODE of the trained field). With C_h > 0 they are integrated too,
    C_h dh/dτ = I_h − g h (the leak taken implicitly, so any step is stable), starting settled at s = 1:
    the departure from the quasi-static run is O(C_h). A conditional circuit holds ``labels`` on its class
    sources; ``guidance`` w ≠ 0 runs the guided pair of copies
    (:func:`~kirchhoffnet.diffusion.score_circuit.model.guided_copies`).

    Shapes:
        x: (B, dim) at s = 1; labels: (B,) long. Returns (B, dim).
    """
    if hidden_capacitance < 0 or not math.isfinite(hidden_capacitance):
        raise ConfigError(f"hidden_capacitance must be >= 0, got {hidden_capacitance}")
    grid = time_grid(model.sde, steps)
    circuit, gain = model.circuit, model.velocity_gain
    copies, mixing = guided_copies(labels, guidance)
    state = x.detach().t().clone()
    with torch.no_grad():
        stacked = state.repeat(1, len(mixing))  # each copy's data terminals follow the shared data nodes
        hidden = circuit.settle(stacked, circuit.drive(grid[0].to(x.dtype), copies))
        for k in bar(range(len(grid) - 1), desc="circuit", unit="step", enabled=progress, leave=False):
            s, dt = grid[k].to(x.dtype), float(grid[k] - grid[k + 1])
            drive = circuit.drive(s, copies)
            if hidden_capacitance:
                # linearly implicit Euler with the exact (diagonal) hidden Jacobian: stable at any step and load
                balance, slope = circuit.hidden_balance(stacked, hidden, drive)
                rate = dt / hidden_capacitance
                hidden = hidden + rate * balance / (1 - rate * slope)
            else:
                hidden = circuit.settle(stacked, drive, hidden)  # a passive circuit starts Newton from the last step
            current = mix_copies(circuit.currents(stacked, hidden, drive)[0], mixing)
            state = state + (gain * dt) * current
            stacked = state.repeat(1, len(mixing))
    return state.t().contiguous()


def circuit_sample(
    model: CircuitScoreModel,
    n: int,
    solver: str = "pf-ode",
    steps: int = 1000,
    seed: int = 0,
    hidden_capacitance: float = 0.0,
    progress: bool = False,
    labels: Tensor | None = None,
    guidance: float = 0.0,
) -> Tensor:
    """``n`` samples: ``pf-ode`` by the circuit transient (:func:`circuit_pf_ode`), ``euler`` by Euler–Maruyama
    on the reverse SDE, x ← x + (2u − ½βx)Δ + √(βΔ) z (the circuit's currents ×2, a leak and a noise source).
    A conditional circuit takes ``labels`` (one, or one per sample; −1 = unconditional) and ``guidance`` w.

    Shapes:
        Returns (n, dim) float32.
    """
    check_request(solver, n, "score-circuit solver")
    labels = check_labels(model.num_classes, labels, int(n))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(int(n), model.dim, generator=generator)
    with single_thread(), torch.no_grad():
        if solver == "pf-ode":
            return circuit_pf_ode(model, x, steps, hidden_capacitance, progress, labels, guidance)

        hidden: Tensor | None = None

        def score(z: Tensor, s: Tensor) -> Tensor:
            nonlocal hidden  # each step settles from the last one's equilibrium
            value, hidden = model._tracked_score(z, s, labels, guidance, hidden)
            return value

        return reference_euler(score, model.sde, x, True, steps, generator)
