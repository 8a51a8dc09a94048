"""The CUDA path: a CNF training step on the original twomoon checkpoint, one MNIST-size right-hand side and MNIST-size
inference, each timed on the GPU (synchronised) with its answer checked against the CPU in the same run.

    python benchmarks/gpu.py [--repeats 10] [--batch 512] [--mnist-batch 250]

Without CUDA it prints one line and exits with status 0: there is nothing to measure.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import kirchhoffnet as kn
from cnf_training_step import TWOMOON
from kirchhoffnet.data import sample_toy


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(min, median) milliseconds of ``fn`` on the GPU, after one warm-up run."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times), statistics.median(times)


def cnf_step(batch: int, repeats: int) -> None:
    cpu = kn.compat.load_original(TWOMOON).train()
    cpu.gradient = kn.Backprop()
    gpu = copy.deepcopy(cpu).cuda()
    x = torch.from_numpy(sample_toy("twomoon", batch, seed=0)).float()
    x_gpu = x.cuda()
    losses = {}

    def step(model: kn.Flow, data: torch.Tensor, name: str) -> Callable[[], None]:
        def run() -> None:
            model.zero_grad()
            loss = -model.log_prob(data).mean()
            loss.backward()
            losses[name] = float(loss.detach())

        return run

    best, median = _timed(step(gpu, x_gpu, "cuda"), repeats)
    step(cpu, x, "cpu")()
    grads = [torch.cat([p.grad.flatten().cpu() for p in m.parameters()]) for m in (cpu, gpu)]
    relative = float((grads[0] - grads[1]).norm() / grads[0].norm())
    print(
        f"CNF training step, twomoon checkpoint, batch {batch}, backprop, dopri5 1e-4: {best:.1f} ms min, "
        f"{median:.1f} ms median; NFE {gpu.stats.nfe if gpu.stats else '?'}; loss cuda {losses['cuda']:.5f} vs cpu "
        f"{losses['cpu']:.5f}; gradient relative difference {relative:.1e}"
    )


def _mnist_network() -> kn.Network:
    edges = kn.topology.mix_connect(1, 28, 28, 4, 50, (1, 1))
    circuit = kn.Circuit(edges, "ShiftRelu1", slices=2)
    solver = kn.Solver("dopri5", rtol=1e-3, atol=1e-3, first_step=1e-2, min_step=1e-5)
    return kn.Network(circuit, "last10", solver, kn.Adjoint()).eval()


def mnist(batch: int, repeats: int) -> None:
    cpu = _mnist_network()
    gpu = copy.deepcopy(cpu).cuda()
    piece_cpu, piece_gpu = cpu.circuit.slice(0), gpu.circuit.slice(0)
    state = torch.rand(piece_cpu.num_state, batch, generator=torch.Generator().manual_seed(0))
    state_gpu = state.cuda()
    images = torch.rand(batch, 28 * 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        rhs_error = float((piece_gpu.field(state_gpu).cpu() - piece_cpu.field(state, "gather")).abs().max())
        best, median = _timed(lambda: piece_gpu.field(state_gpu), repeats)
        print(
            f"MNIST RHS, {piece_cpu.num_edges} edges, batch {batch}: {best:.2f} ms min, {median:.2f} ms median; "
            f"max |cuda - cpu| {rhs_error:.1e}"
        )
        same = bool((gpu(images.cuda()).argmax(1).cpu() == cpu(images).argmax(1)).all())
        best, median = _timed(lambda: gpu(images.cuda()).argmax(1).cpu(), repeats)
        print(
            f"MNIST inference (random parameters, dopri5 1e-3), batch {batch}: {batch / best * 1e3:,.0f} img/s best, "
            f"{batch / median * 1e3:,.0f} img/s median; NFE {gpu.stats.nfe if gpu.stats else '?'}; "
            f"predictions {'identical to' if same else 'DIFFERENT from'} the CPU's"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--mnist-batch", type=int, default=250)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device (torch.cuda.is_available() is False); nothing measured")
        return
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    cnf_step(args.batch, args.repeats)
    mnist(args.mnist_batch, args.repeats)


if __name__ == "__main__":
    main()
