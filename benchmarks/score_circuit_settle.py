"""Settling the passive score circuit's hidden nodes: safeguarded Newton vs damped relaxation.

The baseline is what a passive circuit allows without Newton: relaxation damped by each hidden node's
largest load, h ← h + F(h) / (g + Σ|gain|), which converges for any loads because dF/dh lies in
[−(g + Σ|gain|), −g], evaluated with the generic KCL kernel. Both stop at the same tolerance. The warm
row starts Newton from the equilibrium one sampler step earlier (what ``circuit_pf_ode`` does).

    python benchmarks/score_circuit_settle.py [--run runs/kn/ring_knp] [--batch 10000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved, machine, summary
from kirchhoffnet.diffusion.run import load_run
from kirchhoffnet.diffusion.score_circuit.circuit import ScoreCircuit
from kirchhoffnet.diffusion.score_circuit.settle import SETTLE_ULPS


def damped_relaxation(circuit: ScoreCircuit, x: torch.Tensor, drive: torch.Tensor, tolerance: float) -> int:
    """Iterations of h ← h + F(h)/(g + Σ|gain|) from 0 until |F| < tolerance everywhere."""
    loads = circuit.programmed()[1, : circuit.hidden * (circuit.dim * circuit.repeat + circuit.driven)]
    step = 1.0 / (circuit.leak + loads.abs().view(-1, circuit.hidden).sum(0, keepdim=True).t())
    h = x.new_zeros(circuit.hidden, x.shape[1])
    for iteration in range(1, 5001):
        balance = circuit.currents(x, h, drive)[1] - circuit.leak * h
        if float(balance.abs().max()) < tolerance:
            return iteration
        h = h + step * balance
    raise SystemExit("damped relaxation did not converge in 5000 iterations")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run", type=Path, help="a trained passive score-circuit run, conditional or not (default: random 59 nodes)"
    )
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--s", type=float, default=0.3, help="diffusion time of the settle")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.run is not None:
        circuit = load_run(args.run).model.circuit
        if not circuit.passive:
            raise SystemExit(f"{args.run} is not a passive score circuit (model.passive: false)")
    else:
        circuit = ScoreCircuit(hidden=48, repeat=3, contraction=None, passive=True, settle_steps=40)
    x = torch.randn(2, args.batch)
    tolerance = SETTLE_ULPS * torch.finfo(x.dtype).eps
    labels = torch.arange(args.batch) % circuit.num_classes if circuit.num_classes else None  # classes in turn
    drive, earlier = (circuit.drive(torch.tensor(s), labels) for s in (args.s, args.s + 1 / 300))
    with torch.no_grad():
        previous = circuit.settle(x, earlier)
        iterations = damped_relaxation(circuit, x, drive, tolerance)
        residual = circuit.hidden_balance(x, circuit.settle(x, drive), drive)[0]
        times = interleaved(
            {
                "damped relaxation (kernel)": lambda: damped_relaxation(circuit, x, drive, tolerance),
                "Newton, cold start": lambda: circuit.settle(x, drive),
                "Newton, warm start": lambda: circuit.settle(x, drive, previous),
            },
            repeats=args.repeats,
        )
    print(
        f"settle {circuit.hidden} hidden nodes × {args.batch} samples at s = {args.s} to |F| < {tolerance:.1e} "
        f"({iterations} relaxation iterations; Newton's largest |F| {float(residual.abs().max()):.1e}) — {machine()}"
    )
    print(summary(times, baseline="damped relaxation (kernel)", unit="ms"))


if __name__ == "__main__":
    main()
