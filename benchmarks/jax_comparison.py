"""kirchhoffnet against the JAX/diffrax peer (benchmarks/jax_peer.py), with the machine's limits, in one run.

1. The machine's limits at 1 thread: memory and in-cache copy bandwidth, matmul throughput.
2. One CNF training step on the original twomoon checkpoint (batch 512, dopri5 at 1e-4, ``--threads``):
   kirchhoffnet with backprop through torchdiffeq, with its adjoint, and the same two on its fused integrator
   (``integrator="fused"``, the small-circuit kernel), against JAX + diffrax (jit, backprop through the solver)
   and the original code's approach (``baseline.py``, adjoint); the forward NLLs must agree to the solver
   tolerance first. Prints the fused / JAX time ratios and each step's arithmetic floor as a share of its time.
3. MNIST inference at batch 250 (the original checkpoint's topology; its parameters with --original,
   else random ShiftRelu1 parameters): images per second of kirchhoffnet's default solver (what a user gets),
   of its torchdiffeq integrator and of the peer, identical predictions required, and whether issue 22's
   targets (≥ 250 images/s, ≥ 5x JAX) are met; one right-hand side of each, and kirchhoffnet's as a share of
   the in-cache limit.
4. kirchhoffnet at 1 and 2 threads (`kirchhoffnet.runtime.use_threads`: the numba kernels on N, torch on 1) on the
   CNF step, the MNIST right-hand side and MNIST inference.

Times are medians of interleaved repeats after a warm-up (JAX's compilation excluded). JAX runs on
``--threads`` XLA threads unless XLA_FLAGS says otherwise. Without JAX the peer is skipped with one line.

    OMP_NUM_THREADS=1 python benchmarks/jax_comparison.py [--repeats 5] [--threads 1] [--clock wall|cpu]
        [--skip-mnist] [--skip-threads] [--mnist DIR] [--original DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from baseline import NaiveModel
from common import Limits, interleaved, machine, machine_limits
from kirchhoffnet.data import read_idx, sample_toy
from kirchhoffnet.runtime import use_threads
from mnist_classification import MNIST, _random_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = "kirchhoffnet, default solver"
"""The solver a user gets (`kn.Solver`'s defaults: integrator auto), which issue 22's targets are about."""
TWOMOON = ROOT / "data" / "original" / "twomoon"


def _peer_missing() -> str | None:
    for module in ("jax", "diffrax"):
        if importlib.util.find_spec(module) is None:
            return f"JAX/diffrax peer skipped: {module} is not installed (pip install -e '.[bench]', or make bench)"
    return None


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


FLOPS_PER_FIELD, FLOPS_PER_VJP = 33, 51
"""Floating-point operations per edge and sample of the small-circuit kernel (`kirchhoffnet.circuit._numba_small`,
counted in its source: tanh 23, the field with the divergence 10 more; the vector-Jacobian product fused with the
field 28 more): the arithmetic a CNF step cannot avoid, whatever the integrator's overhead."""


def cnf_step(repeats: int, peer: Any, limits: Limits, clock: Any) -> None:
    """The CNF training step: kirchhoffnet (torchdiffeq and fused integrators, backprop and adjoint), the original
    code's approach and the peer, interleaved."""
    x = torch.from_numpy(sample_toy("twomoon", 512, seed=0)).float()
    models = {}
    for name, gradient, integrator in (
        ("backprop", kn.Backprop(), "torchdiffeq"),
        ("adjoint", kn.Adjoint(), "torchdiffeq"),
        ("fused, backprop", kn.Backprop(), "fused"),
        ("fused, adjoint", kn.Adjoint(), "fused"),
    ):
        model = kn.compat.load_original(TWOMOON).train()
        model.gradient, model.solver = gradient, dataclasses.replace(model.solver, integrator=integrator)
        models[name] = model
    original = NaiveModel(models["adjoint"]).train()
    original.adjoint = True  # the original trained with the adjoint
    nfe: dict[str, tuple[int, int]] = {}

    def ours(model: Any, name: str) -> Any:
        def run() -> None:
            model.zero_grad()
            (-model.log_prob(x).mean()).backward()
            if name in models:
                assert model.stats is not None
                nfe[name] = (sum(model.stats.nfe), sum(model.stats.nfe_backward))

        return run

    candidates = {f"kirchhoffnet, {name}": ours(model, name) for name, model in models.items()}
    candidates["original code's approach, adjoint"] = ours(original, "original")
    with torch.no_grad():
        ours_nll = float(-models["backprop"].log_prob(x).mean())
        fused_nll = float(-models["fused, backprop"].log_prob(x).mean())
    print(f"forward NLL: kirchhoffnet {ours_nll:.6f} (torchdiffeq), {fused_nll:.6f} (fused)", end="")
    if peer is not None:
        flow_peer = peer.FlowPeer(models["backprop"])
        x_peer = x.numpy()
        peer_nll, steps = flow_peer.loss(flow_peer.coeffs, x_peer)
        gap = max(abs(float(peer_nll) - ours_nll), abs(float(peer_nll) - fused_nll))
        print(f", JAX/diffrax {float(peer_nll):.6f}, largest |difference| {gap:.1e}")
        if gap > models["backprop"].solver.rtol:  # both solve the same ODE to this tolerance
            raise SystemExit("the JAX peer and kirchhoffnet disagree on the NLL beyond the solver tolerance")
        evaluations = [1 + 6 * int(s) for s in np.asarray(steps)]  # dopri5 reuses its last stage (FSAL)
        print(f"  NFE JAX: {sum(evaluations)} forward ({int(np.asarray(steps).sum())} steps)")
        candidates[PEER] = lambda: flow_peer.step(x_peer)
    else:
        print()
    times = interleaved(candidates, repeats, clock=clock)
    print(f"\nCNF training step, original twomoon checkpoint, batch 512, dopri5 rtol=atol=1e-4 — {machine()}")
    _table(times, PEER if peer is not None else None)
    piece = models["backprop"].circuit.slice(0)
    work = piece.num_edges * len(x) / (limits.matmul_gflops * 1e9) * 1e3  # ms per flop per edge and sample
    for name, (forward, backward) in nfe.items():
        # backprop: one product per evaluation at most (rejected steps have none); adjoint: one per backward one
        floor = work * (forward * FLOPS_PER_FIELD + (backward or forward) * FLOPS_PER_VJP)
        print(f"  NFE {name}: {forward} forward + {backward} backward; arithmetic floor {floor:.1f} ms", end="")
        print(f" = {100 * floor / _median_ms(times[f'kirchhoffnet, {name}']):.1f} % of the machine limit")
    original_ms = _median_ms(times["original code's approach, adjoint"])
    for name in ("backprop", "adjoint"):
        fused_ms = _median_ms(times[f"kirchhoffnet, fused, {name}"])
        versus = f", fused / JAX time {fused_ms / _median_ms(times[PEER]):.2f}" if peer is not None else ""
        print(f"  fused, {name}: {original_ms / fused_ms:.1f}x the original code's approach{versus}")


PEER = "JAX/diffrax, backprop"


def _table(times: dict[str, list[float]], peer: str | None, unit: str = "ms per step", per: float = 1.0) -> None:
    """Median (and min) per candidate, and each one's time over the peer's (below 1: kirchhoffnet is faster)."""
    for name, values in times.items():
        ratio = f"   ours / peer time {_median_ms(values) / _median_ms(times[peer]):.2f}" if peer else ""
        print(f"  {name:34s} median {_median_ms(values) / per:9.2f}  min {min(values) * 1e3 / per:9.2f} {unit}{ratio}")


def mnist(args: argparse.Namespace, peer: Any, limits: Limits) -> None:
    """MNIST inference at batch 250 and one right-hand side: kirchhoffnet and the peer."""
    model = kn.compat.load_original(args.original) if args.original else _random_model()
    source = "original checkpoint" if args.original else "RANDOM ShiftRelu1 parameters on its topology"
    try:
        images = torch.from_numpy(read_idx(args.mnist / "t10k-images-idx3-ubyte.gz").reshape(-1, 784) / 255.0)
        images = images[: args.batch].float()
    except (OSError, kn.errors.KirchhoffError):
        print(f"(no MNIST test set in {args.mnist}: uniform random images instead)")
        images = torch.rand(args.batch, 784)
    state = model.circuit.input_state(images)
    results: dict[str, np.ndarray] = {}

    def ours(solver: kn.Solver, name: str) -> Any:
        def run() -> None:
            model.solver = solver
            with torch.no_grad():
                results[name] = model(images).argmax(1).numpy()

        return run

    default = model.solver  # what a user gets: the checkpoint's settings, kn.Solver's default integrator
    assert default.integrator == kn.Solver().integrator
    candidates: dict[str, Any] = {
        DEFAULT: ours(default, DEFAULT),
        "kirchhoffnet, integrator torchdiffeq": ours(dataclasses.replace(default, integrator="torchdiffeq"), "td"),
    }
    piece = model.circuit.slice(0)
    v = state.contiguous()
    rhs: dict[str, Any] = {path: (lambda path=path: piece.field(v, path)) for path in ("affine", "fused")}
    if peer is not None:
        network_peer = peer.NetworkPeer(model)
        state_peer, readout = state.numpy(), model.readout

        def theirs() -> None:
            final, steps = network_peer(state_peer)
            results["peer"] = readout(torch.from_numpy(final)).argmax(1).numpy()
            results["peer steps"] = steps

        candidates["JAX/diffrax"] = theirs
        rhs["JAX/diffrax"] = lambda: network_peer.rhs(network_peer.coeffs[0], state_peer).block_until_ready()
    times = interleaved(candidates, args.repeats)
    model.solver = default
    print(f"\nMNIST inference, batch {args.batch}, {source}, dopri5 at 1e-3 — {machine()}")
    for name, values in times.items():
        rate = args.batch / statistics.median(values)
        ratio = f"   {_median_ms(times['JAX/diffrax']) / _median_ms(values):5.2f}x JAX" if peer else ""
        print(f"  {name:38s} {rate:9.1f} images/s (median of {args.repeats}){ratio}")
    rate = args.batch / statistics.median(times[DEFAULT])
    verdict = f"issue 22 targets, default solver: {rate:.1f} images/s ≥ 250: {'met' if rate >= 250 else 'NOT met'}"
    if peer is not None:
        speedup = _median_ms(times["JAX/diffrax"]) / _median_ms(times[DEFAULT])
        verdict += f"; {speedup:.2f}x JAX ≥ 5x: {'met' if speedup >= 5 else 'NOT met'}"
    print(f"  {verdict} (threads {args.threads}, load average {os.getloadavg()[0]:.1f})")
    assert model.stats is not None
    print(f"  NFE kirchhoffnet: {model.stats.nfe}", end="")
    if peer is not None:
        same = bool((results[DEFAULT] == results["peer"]).all() and (results["td"] == results["peer"]).all())
        steps = [1 + 6 * int(s) for s in results["peer steps"]]
        print(f"; JAX/diffrax: {steps} (1 + 6 × steps); identical predictions: {same}")
        if not same:
            raise SystemExit("kirchhoffnet and the JAX peer predict differently")
    else:
        print()
    with torch.no_grad():
        rhs_times = interleaved(rhs, args.repeats)
    floor_ms = limits.floor_ms(piece.num_edges, args.batch)
    print(
        f"  one right-hand side ({piece.num_edges} edges, batch {args.batch}); the in-cache floor is {floor_ms:.2f} ms"
    )
    for name, values in rhs_times.items():
        print(
            f"  {name:34s} median {_median_ms(values):8.2f} ms  min {min(values) * 1e3:8.2f} ms  "
            f"= {100 * floor_ms / _median_ms(values):5.1f} % of the cache limit"
        )


def threads(args: argparse.Namespace) -> None:
    """kirchhoffnet's CNF step (backprop), MNIST right-hand side (the fused kernel) and MNIST inference (the default
    solver) at 1 and 2 threads as `use_threads` sets them (the kernels on N, torch on 1), interleaved."""
    flow = kn.compat.load_original(TWOMOON).train()
    x = torch.from_numpy(sample_toy("twomoon", 512, seed=0)).float()
    network = kn.compat.load_original(args.original) if args.original else _random_model()
    piece = network.circuit.slice(0)
    v = torch.rand(piece.num_state, args.batch)
    images = torch.rand(args.batch, 784, generator=torch.Generator().manual_seed(0))

    def at(count: int, fn: Any) -> Any:
        def run() -> None:
            use_threads(count)
            fn()

        return run

    def step() -> None:
        flow.zero_grad()
        (-flow.log_prob(x).mean()).backward()

    def rhs() -> None:
        with torch.no_grad():
            piece.field(v)

    def inference() -> None:
        with torch.no_grad():
            network(images)

    jobs = (("CNF step", step), ("MNIST RHS", rhs), (f"MNIST inference, batch {args.batch}", inference))
    candidates = {f"{what}, {count} thread(s)": at(count, fn) for what, fn in jobs for count in (1, 2)}
    times = interleaved(candidates, args.repeats)
    use_threads(args.threads)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nkirchhoffnet at 1 and 2 threads: kernels on N, torch on 1 ({os.cpu_count()} cores; load average {load})")
    for what, _ in jobs:
        one, two = (_median_ms(times[f"{what}, {count} thread(s)"]) for count in (1, 2))
        mins = [min(times[f"{what}, {count} thread(s)"]) * 1e3 for count in (1, 2)]
        print(
            f"  {what:30s} median 1: {one:9.2f} ms  2: {two:9.2f} ms  (min {mins[0]:.2f} / {mins[1]:.2f})  "
            f"2 / 1 = {two / one:.2f}{'  SLOWER' if two > one else ''}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=250, help="MNIST images per batch")
    parser.add_argument("--mnist", type=Path, default=MNIST, help="directory of the MNIST test set (IDX files)")
    parser.add_argument("--original", type=Path, help="the original code's results/mnist directory")
    parser.add_argument("--skip-threads", action="store_true", help="leave out the 1-vs-2-thread comparison")
    parser.add_argument("--skip-mnist", action="store_true", help="leave out MNIST inference")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads of the timed runs: XLA's, and kirchhoffnet's by use_threads",
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this process's CPU time, which other jobs on a busy machine disturb less (1 thread only)",
    )
    parser.add_argument("--skip-cnf", action="store_true", help="leave out the CNF training step")
    args = parser.parse_args()
    use_threads(args.threads)  # the kirchhoffnet command's policy: the kernels on --threads, torch on one
    why = _peer_missing()
    if why is None:
        many = "true" if args.threads > 1 else "false"
        flags = f"--xla_cpu_multi_thread_eigen={many} intra_op_parallelism_threads={args.threads}"
        os.environ.setdefault("XLA_FLAGS", flags)
        import jax_peer as peer
    else:
        print(why)
        peer = None
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    limits = machine_limits(clock=clock)
    print(f"{limits.line()}; {args.clock} clock; load average {os.getloadavg()[0]:.1f}")
    if not args.skip_cnf:
        cnf_step(args.repeats, peer, limits, clock)
    if not args.skip_mnist:
        mnist(args, peer, limits)
    if not args.skip_threads:
        threads(args)


if __name__ == "__main__":
    main()
