"""MNIST classification with the original 834-node, 2 × 230,068-edge checkpoint: images per second.

Compares kirchhoffnet with the straightforward implementation (benchmarks/baseline.py) on the same
images and solver settings (dopri5, tol 1e-3, first_step 1e-2, min_step 1e-5), and checks that the
two give identical predictions; kirchhoffnet runs its default solver (what a user gets), and the script says
whether issue 22's ≥ 250 images/s at batch 250 is met. Then kirchhoffnet's torch kernel path (``affine``) against
its numba edge kernel (``fused``, what ``auto`` takes) on one batch, at 1 and 2 threads in the same run
(`kirchhoffnet.runtime.use_threads`: the kernels on N threads, torch on one).
The checkpoint comes from the original repository
(github.com/zhengqigao/kirchhoffnet, src/results/mnist); without it the benchmark uses the same
topology with random parameters and says so.

    python benchmarks/mnist_classification.py --original PATH/TO/results/mnist [--images 100] [--mnist DIR]

The images are the first 1,000 of the MNIST test set, shipped in data/mnist-test-subset; ``--mnist``
names a folder with the full test files for more.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from baseline import NaiveModel
from common import interleaved, machine
from kirchhoffnet.data import read_idx
from kirchhoffnet.runtime import threads, use_threads

MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist-test-subset"  # the first 1,000 test images


def _random_model() -> kn.Network:
    edges = kn.topology.mix_connect(1, 28, 28, 4, 50, (1, 1))
    circuit = kn.Circuit(edges, "ShiftRelu1", slices=2)
    solver = kn.Solver("dopri5", rtol=1e-3, atol=1e-3, first_step=1e-2, min_step=1e-5)
    return kn.Network(circuit, "last10", solver, kn.Adjoint())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, help="the original code's results/mnist directory")
    parser.add_argument("--images", type=int, default=100, help="test images per implementation (one batch)")
    parser.add_argument("--ours-images", type=int, default=1000, help="images for kirchhoffnet's accuracy/throughput")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument(
        "--mnist", type=Path, default=MNIST, help="folder of the MNIST test files (default: the shipped 1,000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of the shared batch and passes over --ours-images; min kept"
    )
    parser.add_argument("--threads", type=int, default=1, help="threads as use_threads sets them (kernels; torch on 1)")
    args = parser.parse_args()
    use_threads(args.threads)

    model = kn.compat.load_original(args.original) if args.original else _random_model()
    assert model.solver.integrator == kn.Solver().integrator  # the default solver, as a user gets it
    source = f"original checkpoint {args.original}" if args.original else "RANDOM parameters (no --original given)"
    images = torch.from_numpy(read_idx(args.mnist / "t10k-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0).float()
    labels = torch.from_numpy(read_idx(args.mnist / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    naive = NaiveModel(model)
    x = images[: args.images]
    logits = {}

    def classify(name, fn):
        def run():
            logits[name] = fn(x)

        return run

    with torch.no_grad():
        times = interleaved({"naive": classify("naive", naive), "ours": classify("ours", model)}, args.repeats, 0)
        naive_s, ours_s = min(times["naive"]), min(times["ours"])
        naive_logits, ours_logits = logits["naive"], logits["ours"]
        same = bool((naive_logits.argmax(1) == ours_logits.argmax(1)).all())
        bulk_s = float("inf")
        for _ in range(args.repeats):  # the first pass also builds the kernels' operators
            start = time.perf_counter()
            correct = 0
            for k in range(0, args.ours_images, args.batch):
                correct += int((model(images[k : k + args.batch]).argmax(1) == labels[k : k + args.batch]).sum())
            bulk_s = min(bulk_s, time.perf_counter() - start)
    print(f"MNIST classification, {source} — {machine()}")
    print(f"original-style : {args.images / naive_s:8.1f} images/s  ({args.images} images in one batch)")
    ratio = naive_s / ours_s
    print(f"kirchhoffnet   : {args.images / ours_s:8.1f} images/s  (same batch) → {ratio:.1f}x (min of {args.repeats})")
    rate = args.ours_images / bulk_s
    print(
        f"kirchhoffnet   : {rate:8.1f} images/s  over {args.ours_images} images "
        f"in batches of {args.batch} (min of {args.repeats}), accuracy {correct / args.ours_images:.4f}"
    )
    met = "met" if rate >= 250 and args.batch == 250 else "NOT met" if args.batch == 250 else "n/a (batch is not 250)"
    print(f"issue 22 target, default solver ({model.solver.integrator}), ≥ 250 images/s at batch 250: {met}")
    with torch.no_grad():
        _paths(model, images[: args.batch], args.repeats)
    gap = float((naive_logits - ours_logits).abs().max())
    print(f"identical predictions on the shared batch: {same}; max |Δlogit| {gap:.2e}")
    if not same:
        raise SystemExit("predictions differ")


def _paths(model: kn.Network, batch: torch.Tensor, repeats: int) -> None:
    """Images per second of one batch with the torch kernel path and the fused kernel, at 1 and at 2 threads as
    `kirchhoffnet.runtime.use_threads` sets them (the kernels on N, torch on 1)."""
    solver = model.solver
    for count in (1, 2):
        runs, predictions = {}, {}
        for kernel in ("affine", "fused"):

            def run(kernel: str = kernel, predictions: dict = predictions) -> None:
                model.solver = dataclasses.replace(solver, kernel=kernel)
                predictions[kernel] = model(batch).argmax(1)

            runs[kernel] = run
        with threads(count):
            best = {k: min(t) for k, t in interleaved(runs, repeats, 0).items()}
        same = bool((predictions["affine"] == predictions["fused"]).all())
        print(
            f"{count} thread(s) (kernels; torch on 1), batch {len(batch)}: "
            f"torch {len(batch) / best['affine']:.1f} images/s, "
            f"fused {len(batch) / best['fused']:.1f} images/s → {best['affine'] / best['fused']:.2f}x "
            f"(min of {repeats}); same predictions: {same}"
        )
    model.solver = solver


if __name__ == "__main__":
    main()
