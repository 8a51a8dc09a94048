"""Cost of the TransistorTable family against MosRelu and ShiftTanh2: one field + exact divergence.

The table's σ is a gather per evaluation and its σ' a search over the knot values, on the torch paths;
MosRelu and ShiftTanh2 have closed forms (ShiftTanh2 in the numba kernel). The table here is the
default one (the level-1 law on 73 knots): a tabulated card's table costs the same per knot count.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/transistor_table_field.py [--batch 512] [--repeat 25]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import kirchhoffnet as kn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512, help="Samples per evaluation.")
    parser.add_argument("--repeat", type=int, default=25, help="Repetition count 'repeat' in the timed loop.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = {}
    for family in ("ShiftTanh2", "MosRelu", "TransistorTable"):
        piece = kn.Slice(kn.topology.fully_connect(3, (25, 25)), family, init="uniform")
        state = torch.randn(piece.num_state, args.batch)
        with torch.no_grad():
            piece.field_and_divergence(state)  # warm-up: kernels, caches
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                for _ in range(args.repeat):
                    piece.field_and_divergence(state)
                best = min(best, (time.perf_counter() - start) / args.repeat)
        results[family] = {"edges": piece.num_edges, "batch": args.batch, "field_and_divergence_s": best}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
