"""torch.compile and torch.export against the eager solve, one thread.

Two hot paths on the 2-D flow circuit (8 slices of fully_connect(3, repeat (10, 10)), ShiftTanh2, 120 edges
per slice, random parameters):

* a fixed-step ``kn.Network`` forward (rk4, ``--step-size``, no gradient): compiled and exported, it takes
  the traced solve (``kirchhoffnet.solve._traced``); eager, the ``affine`` kernel under torchdiffeq;
* the flow's log-density (dopri5 at 1e-4, ``Flow.log_prob``): adaptive, so ``torch.compile`` runs the
  eager solve outside its graph and must cost nothing extra.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/compile.py [--batch 512] [--step-size 0.1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from common import interleaved, machine, summary


def _circuit() -> kn.Circuit:
    torch.manual_seed(0)
    edges = kn.topology.fully_connect(num_nodes=3, repeat=(10, 10))
    return kn.Circuit(edges, device="ShiftTanh2", slices=8, times=[0.2 * k for k in range(9)])


def _timed_first_call(fn, x: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    with torch.no_grad():
        fn(x)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--step-size", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(args.batch, 2)
    print(f"torch.compile / torch.export vs eager, batch {args.batch} — {machine()}")

    network = kn.Network(_circuit(), solver=kn.Solver("rk4", step_size=args.step_size))
    compiled = torch.compile(network)
    print(f"fixed-step network: first compiled call (compilation) {_timed_first_call(compiled, x):.1f} s")
    start = time.perf_counter()
    exported = torch.export.export(network, (x,)).module()
    print(f"fixed-step network: torch.export {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        eager_out = network(x)
        differences = [float((f(x) - eager_out).abs().max()) for f in (compiled, exported)]
    print(f"fixed-step network: max |compiled − eager| {differences[0]:.1e}, |exported − eager| {differences[1]:.1e}")

    def run(fn):  # type: ignore[no-untyped-def]
        def call() -> None:
            with torch.no_grad():
                fn(x)

        return call

    times = interleaved(
        {"eager": run(network), "torch.compile": run(compiled), "exported program": run(exported)}, args.repeats
    )
    print(summary(times, "eager"))

    flow = kn.Flow(_circuit())
    compiled_flow = torch.compile(flow)
    print(f"flow log-density (dopri5): first compiled call {_timed_first_call(compiled_flow, x):.1f} s")
    times = interleaved({"eager": run(flow), "torch.compile": run(compiled_flow)}, max(3, args.repeats // 4))
    print(summary(times, "eager"))


if __name__ == "__main__":
    main()
