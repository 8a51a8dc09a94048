"""ngspice against kirchhoffnet on the same random circuit, side by side in one run.

One slice of a random ShiftTanh2 circuit (``--nodes`` state nodes, ``--edges`` devices, gains of
order 1) from the same initial voltages. ngspice runs with its own default tolerances (the usual
way to use it) and, with ``--tight``, with the verification settings of ``kirchhoffnet spice
verify``; kirchhoffnet runs ``kn.simulate`` with dopri5 in float32 at 1e-4 and in float64 at 1e-6.
Times are interleaved repeats (min and median); each result's error is measured once against
kirchhoffnet at rtol = atol = 1e-10 in float64. A second table compares the ways of simulating a
batch of samples in ngspice: one process per sample, or all samples replicated in one netlist.

    python benchmarks/spice_vs_kirchhoffnet.py [--nodes 300] [--edges 2000] [--repeats 3] [--samples 4] [--tight]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from common import interleaved, machine, summary
from kirchhoffnet.runtime import use_threads
from kirchhoffnet.spice import SpiceOptions, spice_trajectory

Run = Callable[[], np.ndarray]


def compare(title: str, runs: dict[str, Run], reference: np.ndarray, baseline: str, repeats: int) -> None:
    """Print each run's error once, then the interleaved timing table against ``baseline``."""
    print(title)
    for name, run in runs.items():
        print(f"  {name:44s} max |error| {np.abs(run() - reference).max():.2e} V")
    times = interleaved(runs, repeats, warmup=0)
    print(summary(times, baseline, unit="s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=300, help="state nodes (ground excluded)")
    parser.add_argument("--edges", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4, help="samples of the batch comparison (0 skips it)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="kirchhoffnet's threads (use_threads: kernels; torch on 1); ngspice uses one core",
    )
    parser.add_argument("--tight", action="store_true", help="also time ngspice at the verification settings")
    args = parser.parse_args()
    use_threads(args.threads)
    edges = kn.topology.random_graph(args.nodes + 1, args.edges, seed=0)
    single = kn.Circuit(edges, "ShiftTanh2", init="gauss")  # float32, as models run
    with torch.no_grad():
        single.slice(0).params.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    exact = copy.deepcopy(single).double()  # the same parameters in float64, for ngspice and the reference
    x = torch.randn(max(args.samples, 1), args.nodes, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    defaults = SpiceOptions.ngspice_defaults()
    with torch.no_grad():
        reference = kn.simulate(exact, x, solver=kn.Solver(rtol=1e-10, atol=1e-10))[0].numpy()

        def ours(model: kn.Circuit, inputs: torch.Tensor, tol: float) -> Run:
            solver = kn.Solver(rtol=tol, atol=tol)
            return lambda: kn.simulate(model, inputs.to(model.slice(0).params.dtype), solver=solver)[0].double().numpy()

        one = x[:1]
        runs: dict[str, Run] = {
            "ngspice (its defaults)": lambda: spice_trajectory(exact, one, defaults).final,
            "kirchhoffnet f32 @1e-4": ours(single, one, 1e-4),
            "kirchhoffnet f64 @1e-6": ours(exact, one, 1e-6),
        }
        if args.tight:
            runs["ngspice (verify settings)"] = lambda: spice_trajectory(exact, one, SpiceOptions()).final
        print(f"{machine()}, {os.cpu_count()} CPUs, {args.repeats} interleaved repeats")
        compare(
            f"{args.nodes} nodes, {args.edges} edges, ShiftTanh2, 1 sample, t = 0..1 s (speed-up vs ngspice)",
            runs,
            reference[:1],
            "ngspice (its defaults)",
            args.repeats,
        )
        if args.samples < 1:
            return
        batch = x[: args.samples]
        modes: dict[str, Run] = {
            "ngspice: process per sample": lambda: (
                spice_trajectory(exact, batch, defaults, samples_per_netlist=1, jobs=1).final
            ),
            "ngspice: 2 processes at once": lambda: (
                spice_trajectory(exact, batch, defaults, samples_per_netlist=1, jobs=2).final
            ),
            "ngspice: replicas in 1 file": lambda: spice_trajectory(exact, batch, defaults).final,
            "kirchhoffnet f32, one batch": ours(single, batch, 1e-4),
        }
        compare(
            f"\n{args.samples} samples of the same circuit, ngspice at its defaults",
            modes,
            reference[: args.samples],
            "ngspice: process per sample",
            args.repeats,
        )


if __name__ == "__main__":
    main()
