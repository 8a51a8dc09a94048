"""One CNF training step on the original twomoon checkpoint: NLL of 512 points + backward.

Compares kirchhoffnet (node-major kernel, analytic O(E) trace, hand-written backward) with the
straightforward implementation (benchmarks/baseline.py) on the same model, solver and data.

    python benchmarks/cnf_training_step.py [--repeats 5] [--gradient adjoint|backprop]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from baseline import NaiveModel
from common import interleaved, machine, summary
from kirchhoffnet.data import sample_toy

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "kirchhoffnet-original" / "twomoon"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHARED)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--gradient", choices=["adjoint", "backprop"], default="adjoint")
    args = parser.parse_args()

    ours = kn.compat.load_original(args.checkpoint).train()
    ours.gradient = args.gradient
    naive = NaiveModel(ours).train()
    naive.adjoint = args.gradient == "adjoint"
    x = torch.from_numpy(sample_toy("twomoon", args.batch, seed=0)).float()

    losses = {}

    def step(model, name):
        def run():
            model.zero_grad()
            loss = -model.log_prob(x).mean()
            loss.backward()
            losses[name] = loss.item()

        return run

    times = interleaved(
        {"original-style (autograd trace)": step(naive, "naive"), "kirchhoffnet": step(ours, "ours")}, args.repeats
    )
    print(f"CNF training step, twomoon checkpoint, batch {args.batch}, {args.gradient}, dopri5 tol 1e-4 — {machine()}")
    print(summary(times, "original-style (autograd trace)"))
    print(f"loss: original-style {losses['naive']:.5f}, kirchhoffnet {losses['ours']:.5f}")
    if abs(losses["naive"] - losses["ours"]) > 1e-3:
        raise SystemExit("the two implementations disagree on the loss")


if __name__ == "__main__":
    main()
