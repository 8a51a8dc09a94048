"""How far the fused integrator's gradient is from torchdiffeq's backprop on the twomoon checkpoint, in float64.

The fused integrator's backward pass holds the step sizes constant; torchdiffeq's backprop chooses its later
steps without recording a graph too, but differentiates its initial step selection (when no ``first_step`` is
given). So the two agree to rounding with the checkpoint's ``first_step`` and differ by that one term without.

    OMP_NUM_THREADS=1 python experiments/fused_step_gradient.py [--batch 512]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy

TWOMOON = Path(__file__).resolve().parents[1] / "data" / "original" / "twomoon"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    flow = kn.compat.load_original(TWOMOON).double()
    flow.gradient = kn.Backprop()
    x = torch.from_numpy(sample_toy("twomoon", args.batch, seed=0)).double()
    tol = flow.solver.rtol
    for first_step in (flow.solver.first_step, None):
        results = []
        for integrator in ("torchdiffeq", "fused"):
            flow.solver = replace(flow.solver, integrator=integrator, first_step=first_step)
            flow.zero_grad()
            log_p = flow.log_prob(x)
            (-log_p.mean()).backward()
            assert flow.stats is not None
            grads = torch.cat([p.grad.flatten() for p in flow.parameters()])
            results.append((log_p.detach(), grads, flow.stats.nfe))
        (theirs, theirs_grad, theirs_nfe), (ours, ours_grad, ours_nfe) = results
        print(
            f"tol {tol:g}, first_step {first_step}: NFE torchdiffeq {theirs_nfe}, fused {ours_nfe}; "
            f"log p relative difference {float((ours - theirs).norm() / theirs.norm()):.1e}; "
            f"gradient relative difference {float((ours_grad - theirs_grad).norm() / theirs_grad.norm()):.1e}"
        )


if __name__ == "__main__":
    main()
