"""Hardware-aware training against plain training, measured by the same Monte-Carlo over dies.

Two studies, each a few minutes on two CPU cores:

* ``regression``: a 6-node, 2-slice ShiftTanh2 network fits y = sin(2·x1)·cos(x2) from scratch,
  once plainly and once with 5 % per-device mismatch injected at every step; both are then
  measured over the same random dies at σ = 1 … 10 %.
* ``flow``: the original authors' twomoon flow is fine-tuned for the same number of steps plainly
  and with 5 % mismatch (per device, per die and per capacitor); both are saved as checkpoints
  with their data set in the metadata, so that ``kirchhoffnet hw montecarlo`` can compare them.

Usage:
    PYTHONPATH=src python experiments/hardware_aware.py --study regression --out runs/hw-aware
    PYTHONPATH=src python experiments/hardware_aware.py --study flow --out runs/hw-aware
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch

import kirchhoffnet as kn
from kirchhoffnet.data import sample_toy
from kirchhoffnet.hardware import HardwareAwareConfig, HardwareAwareTraining, flow_nll, mse, sigma_sweep
from kirchhoffnet.hardware.plots import plot_metric_vs_sigma
from kirchhoffnet.hardware.report import montecarlo_markdown, write_study

SIGMAS = [0.01, 0.02, 0.05, 0.1]
ORIGINAL = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "kirchhoffnet-original"


def regression_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 3 - 1.5
    return x, torch.sin(2 * x[:, :1]) * torch.cos(x[:, 1:])


def regression_network() -> kn.Network:
    torch.manual_seed(0)
    circuit = kn.Circuit(kn.topology.fully_connect(6, (1, 1)), "ShiftTanh2", slices=2, init="gauss")
    with torch.no_grad():
        for piece in circuit.slices:
            piece.params.normal_(0.0, 0.5)
    return kn.Network(circuit, "last1", kn.Solver("rk4", step_size=0.1))


def train(model: torch.nn.Module, loss_fn, batches, steps: int, lr: float, config: HardwareAwareConfig, cosine: bool):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps) if cosine else None
    aware = HardwareAwareTraining(model, config, seed=1)
    for step in range(steps):
        optimizer.zero_grad()
        with aware.step():
            loss_fn(model, batches(step)).backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()


def regression(out: Path, steps: int, trials: int) -> None:
    x_train, y_train = regression_data(256, 0)
    x_test, y_test = regression_data(512, 1)
    metric = mse(x_test, y_test)
    curves, times = {}, {}
    for label, config in (
        ("plain", HardwareAwareConfig()),
        ("hardware-aware (5 % mismatch)", HardwareAwareConfig(edge=0.05)),
    ):
        net = regression_network()
        start = time.perf_counter()
        train(
            net,
            lambda m, batch: torch.nn.functional.mse_loss(m(batch[0]), batch[1]),
            lambda step: (x_train, y_train),
            steps,
            0.03,
            config,
            cosine=True,
        )
        times[label] = time.perf_counter() - start
        curves[label] = sigma_sweep(net, metric, SIGMAS, kind="edge", trials=trials, seed=7)
    report(out, "regression", curves, times, "sin(2x₁)cos(x₂) regression: test MSE over dies (per-device mismatch)")


def flow(out: Path, steps: int, trials: int, cosine: bool) -> None:
    base = kn.compat.load_original(ORIGINAL / "twomoon")
    data = torch.from_numpy(sample_toy("twomoon", 20_000, seed=123)).float()
    metric = flow_nll(torch.from_numpy(sample_toy("twomoon", 1000, seed=1)))
    mismatch = HardwareAwareConfig(edge=0.05, die=0.05, capacitance=0.05)
    curves, times = {}, {}
    for label, config in (("plain fine-tuning", HardwareAwareConfig()), ("hardware-aware fine-tuning", mismatch)):
        model = copy.deepcopy(base)
        model.gradient = "backprop"
        g = torch.Generator().manual_seed(5)
        start = time.perf_counter()
        train(
            model,
            lambda m, batch: -m.log_prob(batch).mean(),
            lambda step, g=g: data[torch.randint(0, len(data), (256,), generator=g)],
            steps,
            1e-3,
            config,
            cosine=cosine,
        )
        times[label] = time.perf_counter() - start
        model.gradient = "adjoint"
        name = "twomoon-aware" if config == mismatch else "twomoon-plain"
        kn.save(model, out / f"{name}.safetensors", {"dataset": "twomoon", "fine_tuned_steps": steps, "cosine": cosine})
        curves[label] = sigma_sweep(model, metric, SIGMAS, kind="all", trials=trials, seed=7)
    curves = {"original checkpoint": sigma_sweep(base, metric, SIGMAS, kind="all", trials=trials, seed=7), **curves}
    report(out, "flow", curves, times, "twomoon flow: held-out NLL over dies (σ per device, per die and per capacitor)")


def report(out: Path, stem: str, curves: dict, times: dict, title: str) -> None:
    data = {label: [r.to_dict() for r in results] for label, results in curves.items()}
    write_study(out, stem, {"curves": data, "train_seconds": times}, montecarlo_markdown(curves, title))
    plot_metric_vs_sigma(curves, out / f"{stem}.png", title)
    for label, results in curves.items():
        at5 = next(r for r in results if math.isclose(max(r.variation.edge, r.variation.die), 0.05))
        print(f"{stem} {label}: nominal {at5.nominal:.4g}, at 5 %: {at5.mean:.4g} ± {at5.std:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=["regression", "flow"], required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/hw-aware"))
    parser.add_argument("--steps", type=int, default=None, help="training steps (600 regression, 300 flow)")
    parser.add_argument("--trials", type=int, default=50, help="dies per σ")
    parser.add_argument(
        "--cosine", action="store_true", help="flow: decay the learning rate to 0 by a cosine (default: constant 1e-3)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: threads only contend on a shared machine
    if args.study == "regression":
        regression(args.out, args.steps or 600, args.trials)
    else:
        flow(args.out, args.steps or 300, args.trials, args.cosine)


if __name__ == "__main__":
    main()
