"""One CNF training step on the original twomoon checkpoint: NLL of 512 points + backward.

Compares kirchhoffnet (node-major kernel, analytic O(E) trace, hand-written backward) with the
straightforward implementation (benchmarks/baseline.py) on the same model, solver and data. Both
use the checkpoint's gradient mode (the original trained with the adjoint); a third row is
kirchhoffnet with the other gradient method, whose gradient is checked against the first's, and a fourth
the fused integrator (``kn.Solver(integrator="fused")``: the whole dopri5 solve of a slice as one autograd
node), whose NFE, loss and gradient are checked against torchdiffeq's backprop; its speed-up over both
torchdiffeq rows is printed.

    OMP_NUM_THREADS=1 python benchmarks/cnf_training_step.py [--repeats 5] [--gradient adjoint|backprop] [--clock cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
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
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time, for a machine busy with other jobs (run with OMP_NUM_THREADS=1)",
    )
    args = parser.parse_args()

    ours = kn.compat.load_original(args.checkpoint).train()
    ours.gradient = kn.solve.gradient_method(args.gradient)
    other = "backprop" if args.gradient == "adjoint" else "adjoint"
    ours_other = kn.compat.load_original(args.checkpoint).train()
    ours_other.gradient = kn.solve.gradient_method(other)
    fused = kn.compat.load_original(args.checkpoint).train()
    fused.gradient = kn.Backprop()
    fused.solver = replace(fused.solver, integrator="fused")
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
            "kirchhoffnet (fused)": step(fused, "fused"),
        },
        args.repeats,
        clock=time.process_time if args.clock == "cpu" else time.perf_counter,
    )
    print(
        f"CNF training step, twomoon checkpoint, batch {args.batch}, {args.gradient}, dopri5 tol 1e-4, "
        f"{args.clock} time — {machine()}"
    )
    print(summary(times, "original-style (autograd trace)"))
    print(f"loss: original-style {losses['naive']:.5f}, kirchhoffnet {losses['ours']:.5f}")
    grads = [torch.cat([p.grad.flatten() for p in m.parameters()]) for m in (ours, ours_other)]
    relative = float((grads[0] - grads[1]).norm() / grads[0].norm())
    # Both are the exact gradient up to solver error: ~6e-2 apart at tol 1e-4, ~1e-4 at tol 1e-6.
    print(f"gradient, {args.gradient} vs {other}: relative difference {relative:.1e} (solver tolerance 1e-4)")
    backprop = ours if args.gradient == "backprop" else ours_other
    rows = {args.gradient: "kirchhoffnet", other: f"kirchhoffnet ({other})"}
    speedups = {name: min(times[row]) / min(times["kirchhoffnet (fused)"]) for name, row in rows.items()}
    fused_grad = torch.cat([p.grad.flatten() for p in fused.parameters()])
    backprop_grad = torch.cat([p.grad.flatten() for p in backprop.parameters()])
    fused_vs_backprop = float((fused_grad - backprop_grad).norm() / backprop_grad.norm())
    assert fused.stats is not None and backprop.stats is not None
    print(
        f"fused integrator: {speedups['backprop']:.2f}x torchdiffeq backprop, {speedups['adjoint']:.2f}x adjoint "
        f"(min over repeats); NFE {fused.stats.nfe} vs {backprop.stats.nfe}; gradient vs backprop: relative "
        f"difference {fused_vs_backprop:.1e}"
    )
    if abs(losses["naive"] - losses["ours"]) > 1e-3 or relative > 0.2:
        raise SystemExit("the implementations disagree on the loss or the gradient")
    if (
        fused.stats.nfe != backprop.stats.nfe
        or abs(losses["fused"] - losses["ours"]) > 1e-3
        or fused_vs_backprop > 1e-3
    ):
        raise SystemExit("the fused integrator disagrees with torchdiffeq on the steps, the loss or the gradient")


if __name__ == "__main__":
    main()
