"""Build a 3-node circuit by hand, simulate it, and check it against the closed form.

Nodes 0 (ground), 1 and 2; each state node has a 1 F capacitor to ground. Four resistors
(``Conductance`` devices, i = g·(v_src − v_dst)) join them, so the circuit is linear,
C dv/dt = −L v, and its exact solution is v(t) = expm(−C⁻¹L t) v(0): the simulation must match it.

    python examples/circuit_by_hand.py [--fast]      # → runs/examples/circuit.png
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import kirchhoffnet as kn
from kirchhoffnet.io.figures import save_figure

# Row 0 is the source node, row 1 the destination; current flows src → dst. Node 0 is ground.
EDGES = torch.tensor([[1, 2, 1, 2], [2, 1, 0, 0]])
CONDUCTANCE = torch.tensor([[0.5, 0.5, 1.0, 0.25]])  # (P=1, E=4): one parameter row, siemens in SI units


POSITIONS = {0: (0.5, 0.0), 1: (0.0, 1.0), 2: (1.0, 1.0)}  # where the schematic draws each node


def draw_schematic(ax: plt.Axes) -> None:
    """The graph: one arrow per edge (src → dst) labelled with its conductance, ground at the bottom."""
    for k, ((src, dst), g) in enumerate(zip(EDGES.T.tolist(), CONDUCTANCE[0].tolist(), strict=True)):
        bend = 0.25 if {src, dst} == {1, 2} else 0.0  # the two edges between 1 and 2 curve apart
        ax.annotate(
            "",
            xy=POSITIONS[dst],
            xytext=POSITIONS[src],
            arrowprops={"arrowstyle": "-|>", "shrinkA": 14, "shrinkB": 14, "connectionstyle": f"arc3,rad={bend}"},
        )
        (x0, y0), (x1, y1) = POSITIONS[src], POSITIONS[dst]
        offset = 0.17 * (-1 if src < dst else 1) if bend else 0.0
        ax.text((x0 + x1) / 2 + 0.08, (y0 + y1) / 2 + offset, f"e{k}: {g:g} S", fontsize=8)
    for node, (x, y) in POSITIONS.items():
        label = "0\nground" if node == 0 else f"{node}\n1 F"
        ax.scatter([x], [y], s=900, color="lightgray" if node == 0 else "tab:blue", zorder=3)
        ax.text(x, y, label, ha="center", va="center", fontsize=8, color="black" if node == 0 else "white", zorder=4)
    ax.set(xlim=(-0.3, 1.3), ylim=(-0.3, 1.35), aspect="equal", title="edge_index [[1, 2, 1, 2], [2, 1, 0, 0]]")
    ax.axis("off")


def main(out: Path = Path("runs/examples"), fast: bool = False) -> dict[str, float]:
    """Simulate from v(0) = (1 V, −0.5 V) to t = 2 s; write the waveforms and return the error vs expm."""
    torch.set_num_threads(1)  # a few-node circuit runs fastest on one core; more threads only contend
    circuit = kn.Circuit(
        [kn.Slice(EDGES, "Conductance", num_nodes=3, params=CONDUCTANCE.clone())], times=(0.0, 2.0)
    ).double()
    v0 = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    solver = kn.Solver("dopri5", rtol=1e-9, atol=1e-9)
    with torch.no_grad():
        [(t, v)], stats = kn.trajectory(circuit, v0, solver=solver, points_per_slice=21 if fast else 201)

    # The closed form C dv/dt = -L v: each resistor g between nodes a and b adds g to L[a, a] and L[b, b]
    # and -g to L[a, b] and L[b, a] (rows and columns of ground dropped). Here 1-2 carries 0.5 + 0.5.
    laplacian = torch.tensor([[1.0 + 1.0, -1.0], [-1.0, 1.0 + 0.25]], dtype=torch.float64)
    exact = torch.stack([torch.linalg.matrix_exp(-laplacian * ti) @ v0[0] for ti in t])
    error = float((v[:, 0] - exact).abs().max())

    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), gridspec_kw={"width_ratios": [1, 1.4]})
    draw_schematic(left)
    for n in range(2):
        right.plot(t, v[:, 0, n], label=f"v{n + 1} (kirchhoffnet)")
        right.plot(t, exact[:, n], "k:", linewidth=1, label="expm" if n else None)
    right.set(xlabel="time t (s)", ylabel="node voltage (V)", title=f"max |error| vs expm: {error:.1e} V")
    right.legend()
    fig.tight_layout()
    save_figure(fig, out / "circuit.png")
    print(f"final voltages {v[-1, 0].tolist()}, NFE {stats.nfe}, max |v - expm| = {error:.2e} V")
    return {"max_abs_error_v": error, "final_max_abs_v": float(v[-1, 0].abs().max())}


if __name__ == "__main__":
    main(fast="--fast" in sys.argv)
