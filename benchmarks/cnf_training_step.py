"""One CNF training step on the original twomoon checkpoint: NLL of 512 points + backward.

Compares kirchhoffnet (node-major kernel, analytic O(E) trace, hand-written backward) with the
straightforward implementation (benchmarks/baseline.py) on the same model, solver and data. Both
use the checkpoint's gradient mode (the original trained with the adjoint); a third row is
kirchhoffnet with backprop through the solver (``kn.Backprop()``, the default), whose gradient is checked
against the adjoint's.

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

TWOMOON = Path(__file__).resolve().parents[1] / "data" / "original" / "twomoon"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=TWOMOON)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--gradient", choices=["adjoint", "backprop"], default="adjoint")
    args = parser.parse_args()

    ours = kn.compat.load_original(args.checkpoint).train()
    ours.gradient = kn.solve.gradient_method(args.gradient)
    other = "backprop" if args.gradient == "adjoint" else "adjoint"
    ours_other = kn.compat.load_original(args.checkpoint).train()
    ours_other.gradient = kn.solve.gradient_method(other)
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
        {
            "original-style (autograd trace)": step(naive, "naive"),
            "kirchhoffnet": step(ours, "ours"),
            f"kirchhoffnet ({other})": step(ours_other, "other"),
        },
        args.repeats,
    )
    print(f"CNF training step, twomoon checkpoint, batch {args.batch}, {args.gradient}, dopri5 tol 1e-4 — {machine()}")
    print(summary(times, "original-style (autograd trace)"))
    print(f"loss: original-style {losses['naive']:.5f}, kirchhoffnet {losses['ours']:.5f}")
    grads = [torch.cat([p.grad.flatten() for p in m.parameters()]) for m in (ours, ours_other)]
    relative = float((grads[0] - grads[1]).norm() / grads[0].norm())
    # Both are the exact gradient up to solver error: ~6e-2 apart at tol 1e-4, ~1e-4 at tol 1e-6.
    print(f"gradient, {args.gradient} vs {other}: relative difference {relative:.1e} (solver tolerance 1e-4)")
    if abs(losses["naive"] - losses["ours"]) > 1e-3 or relative > 0.2:
        raise SystemExit("the implementations disagree on the loss or the gradient")


if __name__ == "__main__":
    main()
