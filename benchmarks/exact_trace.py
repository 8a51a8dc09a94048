"""Exact Jacobian trace of the 784-dimensional MNIST-generation circuit: analytic O(E) vs autograd loop.

The circuit is the original genmnist topology (two slices of mix_connect over 28×28 pixels with
3×3 windows, ShiftTanh1, 50,240 edges per slice); parameters come from the original checkpoint when
given, else random.

    python benchmarks/exact_trace.py [--original PATH/TO/results/genmnist] [--batch 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from baseline import autograd_trace
from common import interleaved, machine, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.original:
        piece = kn.compat.load_original(args.original).circuit.slice(0)
    else:
        piece = kn.Slice(kn.topology.mix_connect(1, 28, 28, 3, 0, (1, 1)), "ShiftTanh1")
    v = torch.rand(args.batch, piece.num_state)

    def analytic():
        with torch.no_grad():
            return piece.divergence(0.0, v)

    def loop():  # the cheapest form of the baseline: no graph of the trace itself is kept
        x = v.clone().requires_grad_(True)
        return autograd_trace(piece(0.0, x), x, create_graph=False).detach()

    difference = float((analytic() - loop()).abs().max())
    times = interleaved({"autograd loop (784 sweeps)": loop, "analytic O(E)": analytic}, args.repeats)
    print(f"exact trace, {piece.num_state}-d circuit, {piece.num_edges} edges, batch {args.batch} — {machine()}")
    print(summary(times, "autograd loop (784 sweeps)"))
    print(f"max |difference| {difference:.2e}")


if __name__ == "__main__":
    main()
