"""One right-hand-side evaluation of the 230k-edge MNIST circuit at batch 250 (no gradient).

The inner loop of inference: kirchhoffnet's chunked node-major kernel against the straightforward
indexing + scatter_add implementation, on the same random ShiftRelu1 parameters.

    python benchmarks/rhs_evaluation.py [--batch 250] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from baseline import NaiveField
from common import interleaved, machine, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="ShiftRelu1")
    args = parser.parse_args()
    piece = kn.Slice(kn.topology.mix_connect(1, 28, 28, 4, 50, (1, 1)), args.device)
    naive = NaiveField(piece, divergence=False)
    v = torch.rand(args.batch, piece.num_state)
    state = v.T.contiguous()
    with torch.no_grad():
        error = float((naive.rhs(v) - piece.field(state).T).abs().max())
        times = interleaved(
            {"original-style": lambda: naive.rhs(v), "kirchhoffnet": lambda: piece.field(state)}, args.repeats
        )
    size = f"{piece.num_state} nodes, {piece.num_edges} edges, {args.device}, batch {args.batch}"
    print(f"RHS evaluation, {size} — {machine()}")
    print(summary(times, "original-style"))
    print(f"max |difference| {error:.2e}")


if __name__ == "__main__":
    main()
