"""Generation by the score circuit's own transient: the probability-flow ODE integrated by the circuit itself.

The digital samplers of `kirchhoffnet.diffusion.sample` step a score function (the circuit's too, each
step's settle started from the last); here the probability-flow ODE is the circuit's transient, with the hidden
nodes at equilibrium or integrated on their own capacitors C_h. It is the ``transient`` integrator of
[`kirchhoffnet.diffusion.samplers`][kirchhoffnet.diffusion.samplers].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from kirchhoffnet._progress import bar
from kirchhoffnet.diffusion.field import guided_copies, mix_copies
from kirchhoffnet.diffusion.sample import time_grid
from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
from kirchhoffnet.errors import ConfigError

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
    (`guided_copies`).

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
