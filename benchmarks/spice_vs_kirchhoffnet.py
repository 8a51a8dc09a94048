"""ngspice against kirchhoffnet on the same random circuit, side by side in one run.

One slice of a random ShiftTanh2 circuit (``--nodes`` state nodes, ``--edges`` devices, gains of
order 1) from the same initial voltages. ngspice runs with its own default tolerances (the usual
way to use it) and, with ``--tight``, with the verification settings of ``kirchhoffnet spice
verify``; kirchhoffnet runs ``kn.simulate`` with dopri5 in float32 at 1e-4 and in float64 at 1e-6.
Every figure is the minimum over interleaved repeats, and each result's error is measured against
kirchhoffnet at rtol = atol = 1e-10 in float64. A second table compares the ways of simulating a
batch of samples in ngspice: one process per sample, or all samples replicated in one netlist.

    python benchmarks/spice_vs_kirchhoffnet.py [--nodes 300] [--edges 2000] [--repeats 3] [--samples 4] [--tight]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import torch

import kirchhoffnet as kn
from kirchhoffnet.spice import SpiceOptions, spice_trajectory


def interleaved(candidates: dict[str, Callable[[], np.ndarray]], repeats: int) -> tuple[dict[str, float], dict]:
    """Minimum seconds of each candidate over ``repeats`` alternating rounds, and its last result."""
    best = dict.fromkeys(candidates, float("inf"))
    results: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            results[name] = run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=300, help="state nodes (ground excluded)")
    parser.add_argument("--edges", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=4, help="samples of the batch comparison (0 skips it)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one ngspice process uses one core)")
    parser.add_argument("--tight", action="store_true", help="also time ngspice at the verification settings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    edges = kn.topology.random_graph(args.nodes + 1, args.edges, seed=0)
    circuit = kn.Circuit(edges, "ShiftTanh2", init="gauss")
    with torch.no_grad():
        circuit.slice(0).params.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    exact = circuit.double()
    x = torch.randn(max(args.samples, 1), args.nodes, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    one = x[:1]
    with torch.no_grad():
        reference = kn.simulate(exact, x, solver=kn.Solver(rtol=1e-10, atol=1e-10))[0].numpy()
        single = {
            "ngspice (its defaults)": lambda: spice_trajectory(exact, one, SpiceOptions.ngspice_defaults()).final,
            "kirchhoffnet f32 @1e-4": lambda: (
                kn.simulate(circuit.float(), one.float(), solver=kn.Solver())[0].double().numpy()
            ),
            "kirchhoffnet f64 @1e-6": lambda: kn.simulate(exact.double(), one, solver=kn.Solver(rtol=1e-6, atol=1e-6))[
                0
            ].numpy(),
        }
        if args.tight:
            single["ngspice (verify settings)"] = lambda: spice_trajectory(exact, one, SpiceOptions()).final
        best, results = interleaved(single, args.repeats)
    print(
        f"{args.nodes} nodes, {args.edges} edges, ShiftTanh2, 1 sample, t = 0..1 s — {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
        f"min of {args.repeats}"
    )
    print(f"{'':28s} {'seconds':>10s} {'max |error| V':>14s}")
    for name, seconds in best.items():
        print(f"{name:28s} {seconds:10.4f} {np.abs(results[name] - reference[:1]).max():14.2e}")
    spice = best["ngspice (its defaults)"]
    for ours in ("kirchhoffnet f32 @1e-4", "kirchhoffnet f64 @1e-6"):
        print(f"speed ratio ngspice / {ours}: {spice / best[ours]:.0f}x")
    if args.samples < 1:
        return
    batch = x[: args.samples]
    options = SpiceOptions.ngspice_defaults()
    with torch.no_grad():
        modes = {
            "ngspice, 1 process/sample, 1 at a time": lambda: (
                spice_trajectory(exact, batch, options, samples_per_netlist=1, jobs=1).final
            ),
            "ngspice, 1 process/sample, 2 at a time": lambda: (
                spice_trajectory(exact, batch, options, samples_per_netlist=1, jobs=2).final
            ),
            "ngspice, all samples in 1 netlist": lambda: spice_trajectory(exact, batch, options).final,
            "kirchhoffnet f32 @1e-4, one batch": lambda: (
                kn.simulate(circuit.float(), batch.float(), solver=kn.Solver())[0].double().numpy()
            ),
        }
        best, results = interleaved(modes, args.repeats)
    print(f"\n{args.samples} samples of the same circuit, ngspice at its default tolerances")
    print(f"{'':40s} {'seconds':>10s} {'max |error| V':>14s}")
    for name, seconds in best.items():
        print(f"{name:40s} {seconds:10.4f} {np.abs(results[name] - reference[: args.samples]).max():14.2e}")
    seconds, mode = min((v, k) for k, v in best.items() if k.startswith("ngspice"))
    ratio = seconds / best["kirchhoffnet f32 @1e-4, one batch"]
    print(f"fastest ngspice mode: {mode}; speed ratio to kirchhoffnet: {ratio:.0f}x")


if __name__ == "__main__":
    main()
