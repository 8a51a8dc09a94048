"""One right-hand-side evaluation of the 230k-edge MNIST circuit at batch 250 (no gradient).

The inner loop of inference: kirchhoffnet's torch path (``affine``: CSR gather, σ, CSR incidence)
and its numba edge kernel (``fused``) against the straightforward indexing + scatter_add
implementation, on the same random ShiftRelu1 parameters; then torch path against fused kernel at
1 and 2 threads in the same run, and the fused kernel as a share of the in-cache limit measured in
the same run (`common.Limits.floor_ms`).

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
from common import interleaved, machine, machine_limits, summary
from kirchhoffnet.runtime import threads


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
        fused_error = float((piece.field(state, "fused") - piece.field(state, "gather")).abs().max())
        times = interleaved(
            {
                "original-style": lambda: naive.rhs(v),
                "kirchhoffnet, torch (affine)": lambda: piece.field(state, "affine"),
                "kirchhoffnet, fused": lambda: piece.field(state, "fused"),
            },
            args.repeats,
        )
        size = f"{piece.num_state} nodes, {piece.num_edges} edges, {args.device}, batch {args.batch}"
        print(f"RHS evaluation, {size} — {machine()}")
        print(summary(times, "original-style"))
        print(f"max |difference| original-style {error:.2e}, fused vs gather {fused_error:.2e}")
        for count in (1, 2):  # as kirchhoffnet.runtime.use_threads sets them: the kernels on N, torch on 1
            with threads(count):
                limits = machine_limits()
                paths = {path: lambda path=path: piece.field(state, path) for path in ("affine", "fused")}
                best = {path: min(t) * 1e3 for path, t in interleaved(paths, args.repeats).items()}
            floor = limits.floor_ms(piece.num_edges, args.batch)
            print(
                f"{count} thread(s) (kernels; torch on 1): torch {best['affine']:.2f} ms, "
                f"fused {best['fused']:.2f} ms per RHS "
                f"→ {best['affine'] / best['fused']:.2f}x (min of {args.repeats}); in-cache floor {floor:.2f} ms "
                f"({limits.cache_gbs:.1f} GB/s): fused at {100 * floor / best['fused']:.0f} % of the cache limit"
            )


if __name__ == "__main__":
    main()
