"""Which nodes of a trained circuit leave the supply rails, and when: kirchhoffnet's own float64 transient of a
run on its first ``--samples`` test (and training) inputs, sampled at ``--points`` times per slice, reduced per
node group (input nodes, hidden nodes, the readout's last ``--readout-nodes``) to the lowest and highest
voltage, the count of nodes and inputs past ``--rails``, and where in the slice the extremes fall.

This is the cheap half of a rails check (seconds, no ngspice): `spice verify --transistors --rails` agrees with
it to the transient's error (docs/spice.md, "Fashion-MNIST on the BSIM4 table, before and after").

Usage:
    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/rails_excursion.py runs/fmnist_bsim4 --samples 500 \
        --rails 0 1
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import Tensor

from kirchhoffnet.solve import trajectory
from kirchhoffnet.spice.netlist import as_circuit
from kirchhoffnet.spice.verify import REFERENCE_SOLVER
from kirchhoffnet.training.hw import open_saved


def groups(nodes: int, inputs: int, readout: int) -> dict[str, slice]:
    """Node index ranges: the inputs fill the first nodes, the readout reads the last ones."""
    return {
        "input": slice(0, inputs),
        "hidden": slice(inputs, nodes - readout),
        "readout": slice(nodes - readout, nodes),
    }


def report(label: str, t: Tensor, v: Tensor, parts: dict[str, slice], low: float, high: float) -> None:
    """One line per node group: range, nodes and inputs past the rails, and the time of the extremes."""
    print(f"{label}: {v.shape[1]} inputs, {len(t)} times per slice")
    for name, part in parts.items():
        w = v[:, :, part]  # (T, B, n)
        if w.numel() == 0:
            continue
        lo, hi = w.amin(), w.amax()
        t_lo = t[w.amin((1, 2)).argmin()].item()
        t_hi = t[w.amax((1, 2)).argmax()].item()
        past = (w < low) | (w > high)
        nodes_past = int(past.any(0).any(0).sum())
        inputs_past = int(past.any(0).any(1).sum())
        at_end = (w[-1] < low) | (w[-1] > high)
        print(
            f"  {name:8s} {lo:+.4f} (t={t_lo:.2f}) … {hi:+.4f} (t={t_hi:.2f}) V; past {low:g}–{high:g} V: "
            f"{nodes_past}/{w.shape[2]} nodes, {inputs_past}/{w.shape[1]} inputs (at the slice end: "
            f"{int(at_end.any(0).sum())} nodes, {int(at_end.any(1).sum())} inputs)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--points", type=int, default=101, help="times per slice, ends included")
    parser.add_argument("--rails", type=float, nargs=2, default=(0.0, 1.0), metavar=("LOW", "HIGH"))
    parser.add_argument("--readout-nodes", type=int, default=10)
    opts = parser.parse_args()
    saved = open_saved(opts.run)
    circuit = copy.deepcopy(as_circuit(saved.model)).to(torch.float64)
    assert saved.task is not None
    sets = {"test": saved.task.test_data()[0], "train": saved.task.train_data[0]}  # type: ignore[attr-defined]
    for label, inputs in sets.items():
        x = inputs[: opts.samples].to(torch.float64).flatten(1)
        with torch.no_grad():
            waves, _ = trajectory(circuit, x, solver=REFERENCE_SOLVER, points_per_slice=opts.points)
        for k, (t, v) in enumerate(waves):
            parts = groups(v.shape[2], x.shape[1], opts.readout_nodes)
            report(f"{opts.run} {label}, slice {k}", t, v, parts, *opts.rails)


if __name__ == "__main__":
    main()
