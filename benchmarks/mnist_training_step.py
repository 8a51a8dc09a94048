"""One training step (forward + adjoint backward) of the paper's MNIST topology: where an epoch's time goes.

The 834-node, 2 × 230,068-edge ``mix_connect`` circuit (ShiftRelu1, dopri5 at 1e-3, adjoint gradients,
as `configs/classify/fashion_mnist.yaml`) on one batch of Fashion-MNIST training images, cross-entropy on
the last ten nodes. Three kernel paths in the same run, interleaved:

* ``gather``: torchdiffeq's ``odeint_adjoint``, autograd through the gather path at every backward step
  (what kirchhoffnet did before the closed-form products reached large circuits: the reference);
* ``affine``: the closed-form vector-Jacobian product on torch CSR operators;
* ``auto``: the numba edge kernel for the field and its vector-Jacobian product.

All three must give the same gradient (to float32 rounding). Prints seconds per step, the speed-up over
the first path, the steps per epoch (55,000 images) and the NFE, at 1 and 2 threads. ``--paths`` picks the
candidates; ``odenet`` adds the ODE-Net baseline of the same size (`configs/classify/fashion_mnist_odenet.yaml`:
932,154 parameters, the same solver settings and adjoint) to the interleaving, timed but not compared.

    OMP_NUM_THREADS=1 python benchmarks/mnist_training_step.py [--batch 256] [--repeats 2] [--original DIR]
        [--paths gather,affine,auto,odenet] [--clock cpu]

``--clock cpu`` times process CPU seconds (every thread's: compare paths at 1 thread) where other jobs share the host.
``--solve rk4`` takes the step of experiments/fashion_mnist.py --paper instead (RK4 at step 0.5, backpropagated
through its stages), the recipe both the circuit and the ODE-Net were trained with there.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from common import interleaved, machine, summary
from kirchhoffnet.data import read_idx
from kirchhoffnet.models.baselines import ODENet
from kirchhoffnet.runtime import threads

FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
KERNELS = ("gather", "affine", "auto")
ODENET = "odenet"


SOLVES = {  # --solve: (solver, gradient)
    "dopri5": (kn.Solver("dopri5", rtol=1e-3, atol=1e-3, first_step=1e-2, min_step=1e-5), kn.Adjoint()),
    "rk4": (kn.Solver("rk4", step_size=0.5), kn.Backprop()),
}


def _model(original: Path | None, solve: str) -> kn.Network:
    if original is not None:
        model = kn.compat.load_original(original)
        if solve != "dopri5":  # otherwise the original's own solver settings, as before --solve existed
            model.solver, model.gradient = SOLVES[solve]
        return model
    edges = kn.topology.mix_connect(1, 28, 28, 4, 50, (1, 1))
    circuit = kn.Circuit(edges, "ShiftRelu1", slices=2)
    return kn.Network(circuit, "last10", *SOLVES[solve])


def _batch(size: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    images, labels = FASHION / "train-images-idx3-ubyte.gz", FASHION / "train-labels-idx1-ubyte.gz"
    if images.exists() and labels.exists():
        x = torch.from_numpy(read_idx(images)[:size].reshape(size, 784) / 255.0).float()
        y = torch.from_numpy(read_idx(labels)[:size].astype(np.int64))
        return x, y, "Fashion-MNIST training images"
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(size, 784, generator=generator), torch.randint(0, 10, (size,), generator=generator)
    return x, y, "RANDOM images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved steps per path; the min is kept")
    parser.add_argument("--original", type=Path, help="the original code's results/mnist directory (else random)")
    parser.add_argument("--paths", default=",".join(KERNELS), help=f"of {', '.join((*KERNELS, ODENET))}")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall or process CPU seconds")
    parser.add_argument("--solve", choices=tuple(SOLVES), default="dopri5", help="the configs' or the --paper recipe's")
    args = parser.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    paths = args.paths.split(",")
    unknown = sorted(set(paths) - {*KERNELS, ODENET})
    if unknown or not paths:
        parser.error(f"--paths: unknown {unknown}; choose from {', '.join((*KERNELS, ODENET))}")
    torch.manual_seed(0)
    model = _model(args.original, args.solve)
    solver = model.solver
    odenet = ODENet(1, 28, 28, 10, channels=136, downsamplings=2, solver=solver, gradient=SOLVES[args.solve][1])
    x, y, source = _batch(args.batch)
    grads, nfe = {}, {}

    def step(path: str) -> None:
        trained: kn.Network | ODENet = odenet if path == ODENET else model
        if path != ODENET:
            model.solver = dataclasses.replace(solver, kernel=path)
        trained.zero_grad()
        torch.nn.functional.cross_entropy(trained(x), y).backward()
        grads[path] = torch.cat([p.grad.flatten() for p in trained.parameters() if p.grad is not None])
        nfe[path] = (sum(trained.stats.nfe), sum(trained.stats.nfe_backward))

    params = "original checkpoint" if args.original else "random parameters"
    print(f"MNIST-topology training step ({args.solve}), {params}, batch {args.batch} of {source}")
    for count in (1, 2):  # as kirchhoffnet.runtime.use_threads sets them: the kernels on N, torch on 1
        with threads(count):
            times = interleaved({k: (lambda k=k: step(k)) for k in paths}, args.repeats, 1, clock=clock)
            print(f"\n{machine()}")
        print(summary(times, paths[0], unit="s"))
        for path in paths:
            epoch_min = min(times[path]) * -(-55000 // args.batch) / 60
            line = f"{path:8s} NFE fwd/bwd {nfe[path]}, epoch ≈ {epoch_min:.0f} min"
            if path != ODENET and paths[0] != ODENET:
                line += f", |Δgrad|/|grad| {float((grads[path] - grads[paths[0]]).norm() / grads[paths[0]].norm()):.1e}"
            print(line)
    model.solver = solver


if __name__ == "__main__":
    main()
