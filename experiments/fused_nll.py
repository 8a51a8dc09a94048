"""The twomoon checkpoint's held-out NLL on the fused integrator (the small-circuit kernel, float32) against
torchdiffeq's (the torch kernels), at the checkpoint's own tolerance, and both against float64.

The two solve the same ODE with the same steps; what separates them is float32 rounding (the kernel's rational
tanh, the order of its sums), which must stay well inside the solver tolerance.

    OMP_NUM_THREADS=1 python experiments/fused_nll.py [--points 20000] [--batch 512]
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy

TWOMOON = Path(__file__).resolve().parents[1] / "data" / "original" / "twomoon"


def nll(flow: kn.Flow, x: torch.Tensor, batch: int) -> tuple[float, list[int]]:
    """The mean NLL over ``x`` in batches, and the NFE per slice of the last batch."""
    with torch.no_grad():
        total = sum(float(-flow.log_prob(part).sum()) for part in x.split(batch))
    assert flow.stats is not None
    return total / len(x), flow.stats.nfe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    x = torch.from_numpy(sample_toy("twomoon", args.points, seed=1))
    flow = kn.compat.load_original(TWOMOON)
    results = {}
    for name, integrator, dtype in (
        ("torchdiffeq, float32", "torchdiffeq", torch.float32),
        ("fused, float32", "fused", torch.float32),
        ("torchdiffeq, float64", "torchdiffeq", torch.float64),
    ):
        flow.to(dtype).solver = replace(flow.solver, integrator=integrator)
        results[name] = nll(flow, x.to(dtype), args.batch)
    exact = results["torchdiffeq, float64"][0]
    print(f"twomoon checkpoint, {args.points} held-out points, dopri5 rtol=atol={flow.solver.rtol:g}")
    for name, (value, nfe) in results.items():
        print(
            f"  {name:22s} NLL {value:.6f} nats  (|Δ| to float64 {abs(value - exact):.1e}; NFE of the last batch {nfe})"
        )
    gap = abs(results["fused, float32"][0] - results["torchdiffeq, float32"][0])
    print(f"  fused vs torchdiffeq: |Δ NLL| {gap:.1e} (solver tolerance {flow.solver.rtol:g})")
    if gap > flow.solver.rtol:
        raise SystemExit("the fused integrator and torchdiffeq disagree beyond the solver tolerance")


if __name__ == "__main__":
    main()
