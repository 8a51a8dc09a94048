"""Hardware-aware training against plain training, measured by the same Monte-Carlo over dies.

Three studies, a few minutes each on two CPU cores (the classifier about 15 with the settings below):

* ``regression``: a 6-node, 2-slice ShiftTanh2 network fits y = sin(2·x1)·cos(x2) from scratch,
  once plainly and once with 5 % per-device mismatch injected at every step; both are then
  measured over the same random dies at σ = 1 … 10 %.
* ``flow``: the original authors' twomoon flow is fine-tuned for the same number of steps plainly
  and with 5 % mismatch (per device, per die and per capacitor); both are saved as checkpoints
  with their data set in the metadata, so that ``kirchhoffnet hw montecarlo`` can compare them.
* ``classifier``: a trained classifier run (``--base``, default the 7×7 ShiftTanh2 Fashion-MNIST run
  runs/hw/fmnist-tanh-plain) is fine-tuned the same way on its own training data (the run's
  preprocessing and batch size); both are saved as run directories (``classifier-plain``,
  ``classifier-aware``) that ``kirchhoffnet hw montecarlo`` reads like the base run, and measured by
  test accuracy on the first ``--points`` test images.

The fine-tuning studies measure the base model and both fine-tuned ones over the same dies (seed 7),
σ applied to all three kinds at once, and report the paired difference (aware − plain) die by die.

Usage:
    PYTHONPATH=src python experiments/hardware_aware.py --study regression --out runs/hw-aware
    PYTHONPATH=src python experiments/hardware_aware.py --study flow --out runs/hw-aware
    PYTHONPATH=src python experiments/hardware_aware.py --study classifier --steps 1000 --lr 2e-3 --cosine \\
        --trials 30 --points 5000 --out runs/hw/fmnist-tanh-aware
"""

from __future__ import annotations

import argparse
import copy
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

import kirchhoffnet as kn
from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.data import sample_toy
from kirchhoffnet.hardware import HardwareAwareConfig, HardwareAwareTraining, accuracy, flow_nll, mse, sigma_sweep
from kirchhoffnet.hardware.plots import plot_metric_vs_sigma
from kirchhoffnet.hardware.report import montecarlo_markdown, write_study
from kirchhoffnet.hardware.variation import MonteCarloResult
from kirchhoffnet.training import open_run
from kirchhoffnet.training.rundir import CONFIG

SIGMAS = [0.01, 0.02, 0.05, 0.1]
INJECTED = 0.05  # σ of every kind that hardware-aware fine-tuning injects (--inject)
PLAIN, AWARE = "plain fine-tuning", "hardware-aware fine-tuning"
ORIGINAL = Path(__file__).resolve().parents[1] / "data" / "original"


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


def regression(out: Path, steps: int, trials: int, lr: float) -> None:
    x_train, y_train = regression_data(256, 0)
    x_test, y_test = regression_data(512, 1)
    metric = mse(x_test, y_test)
    curves, times = {}, {}
    plain, aware = "plain", "hardware-aware (5 % mismatch)"
    for label, config in ((plain, HardwareAwareConfig()), (aware, HardwareAwareConfig(edge=0.05))):
        net = regression_network()
        start = time.perf_counter()
        train(
            net,
            lambda m, batch: torch.nn.functional.mse_loss(m(batch[0]), batch[1]),
            lambda step: (x_train, y_train),
            steps,
            lr,
            config,
            cosine=True,
        )
        times[label] = time.perf_counter() - start
        curves[label] = sigma_sweep(net, metric, SIGMAS, kind="edge", trials=trials, seed=7)
    title = "sin(2x₁)cos(x₂) regression: test MSE over dies (per-device mismatch)"
    report(out, "regression", curves, times, title, pair=(plain, aware))


def mismatch(sigma: float) -> HardwareAwareConfig:
    """σ per device, per die and per capacitor: what hardware-aware fine-tuning injects."""
    return HardwareAwareConfig(edge=sigma, die=sigma, capacitance=sigma)


def fine_tune(
    base,
    base_label: str,
    loss_fn,
    draw,
    steps: int,
    lr: float,
    cosine: bool,
    metric,
    trials: int,
    save,
    seed: int,
    inject: float = INJECTED,
):
    """Copies of ``base`` fine-tuned on the same batches (``draw(generator)``, the generator seeded by ``seed``),
    plainly and with ``mismatch(inject)``, each passed to ``save(model, "plain" | "aware")``; all three measured
    over the same dies."""
    curves = {base_label: sigma_sweep(base, metric, SIGMAS, kind="all", trials=trials, seed=7)}
    times = {}
    for name, label, config in (("plain", PLAIN, HardwareAwareConfig()), ("aware", AWARE, mismatch(inject))):
        model = copy.deepcopy(base)
        model.gradient = kn.Backprop()
        g = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        train(model, loss_fn, lambda step, g=g: draw(g), steps, lr, config, cosine=cosine)
        times[label] = time.perf_counter() - start
        model.gradient = base.gradient
        save(model, name)
        curves[label] = sigma_sweep(model, metric, SIGMAS, kind="all", trials=trials, seed=7)
    return curves, times


def flow(out: Path, steps: int, trials: int, lr: float, cosine: bool, seed: int) -> None:
    base = kn.compat.load_original(ORIGINAL / "twomoon")
    data = torch.from_numpy(sample_toy("twomoon", 20_000, seed=123)).float()
    metric = flow_nll(torch.from_numpy(sample_toy("twomoon", 1000, seed=1)))
    meta = {"dataset": "twomoon", "fine_tuned_steps": steps, "cosine": cosine}
    curves, times = fine_tune(
        base,
        "original checkpoint",
        lambda m, batch: -m.log_prob(batch).mean(),
        lambda g: data[torch.randint(0, len(data), (256,), generator=g)],
        steps,
        lr,
        cosine,
        metric,
        trials,
        lambda model, name: kn.save(model, out / f"twomoon-{name}.safetensors", meta),
        seed,
    )
    title = "twomoon flow: held-out NLL over dies (σ per device, per die and per capacitor)"
    report(out, "flow", curves, times, title, pair=(PLAIN, AWARE))


def classifier(
    out: Path, base_dir: Path, steps: int, trials: int, points: int, lr: float, cosine: bool, seed: int, inject: float
) -> None:
    config, task, base = open_run(base_dir)
    x, y = task.test_data()
    metric = accuracy(x[:points], y[:points], task.eval_batch)  # what `hw montecarlo --points` measures
    size, batch = task.train_size, config.train.batch_size
    unused = torch.Generator()  # a classifier's loss draws nothing

    def save(model: torch.nn.Module, name: str) -> None:
        run = out / f"classifier-{name}"
        run.mkdir(parents=True, exist_ok=True)
        shutil.copy(base_dir / CONFIG, run / CONFIG)  # the same task, data and circuit as the base run
        aware = mismatch(inject).model_dump() if name == "aware" else None
        meta = {
            "fine_tuned_from": str(base_dir),
            "steps": steps,
            "lr": lr,
            "cosine": cosine,
            "batch_seed": seed,
            "hardware_aware": aware,
        }
        task.save_model(model, run / RUN_MODEL, meta)

    curves, times = fine_tune(
        base,
        f"base run ({base_dir.name})",
        lambda m, b: task.loss(m, b, unused),
        lambda g: task.batch(torch.randint(0, size, (batch,), generator=g), g),
        steps,
        lr,
        cosine,
        metric,
        trials,
        save,
        seed,
        inject,
    )
    title = f"{config.label}: accuracy on {min(points, len(y))} test images over dies (σ of every kind)"
    report(out, "classifier", curves, times, title, pair=(PLAIN, AWARE))


def sigma_of(result: MonteCarloResult) -> float:
    v = result.variation
    return max(v.edge, v.die, v.capacitance)


def paired(a: MonteCarloResult, b: MonteCarloResult) -> dict:
    """``b − a`` over the same dies (those both solved): mean, standard error, dies on which ``b`` is better."""
    va, vb = np.array(a.values), np.array(b.values)
    diff = (vb - va)[np.isfinite(va) & np.isfinite(vb)]
    wins = int((diff > 0).sum() if a.higher_is_better else (diff < 0).sum())
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.nan
    return {"sigma": sigma_of(a), "mean": float(diff.mean()), "se": se, "wins": wins, "dies": int(diff.size)}


def report(out: Path, stem: str, curves: dict, times: dict, title: str, pair: tuple[str, str]) -> None:
    """Writes ``<stem>.json/.md/.png``; prints each model at σ = 5 % and ``pair[1] − pair[0]`` die by die."""
    a, b = pair
    diffs = [paired(ra, rb) for ra, rb in zip(curves[a], curves[b], strict=True)]
    data = {
        "curves": {label: [r.to_dict() for r in results] for label, results in curves.items()},
        "train_s": times,
        "paired": {"difference": f"{b} − {a}", "by_sigma": diffs},
    }
    lines = {
        d["sigma"]: f"{d['mean']:+.4g} ± {d['se']:.2g} ({b} better on {d['wins']} of {d['dies']} dies)" for d in diffs
    }
    paired_md = [f"{b} − {a} on the same dies (mean ± standard error):", ""]
    paired_md += [f"- σ {sigma:g}: {line}" for sigma, line in lines.items()]
    write_study(out, stem, data, montecarlo_markdown(curves, title) + "\n" + "\n".join(paired_md) + "\n")
    plot_metric_vs_sigma(curves, title).savefig(out / f"{stem}.png")
    for label, results in curves.items():
        at5 = next(r for r in results if math.isclose(sigma_of(r), 0.05))
        print(f"{stem} {label}: nominal {at5.nominal:.4g}, at 5 %: {at5.mean:.4g} ± {at5.std:.2g}")
    print(f"{stem} {b} − {a}, same dies, at 5 %: {next(v for k, v in lines.items() if math.isclose(k, 0.05))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=["regression", "flow", "classifier"], required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/hw-aware"))
    parser.add_argument(
        "--base", type=Path, default=Path("runs/hw/fmnist-tanh-plain"), help="classifier: the trained run to fine-tune"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps (600 regression, 300 flow, classifier)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (0.03 regression, 1e-3 flow, classifier)")
    parser.add_argument("--trials", type=int, default=50, help="dies per σ")
    parser.add_argument("--seed", type=int, default=5, help="fine-tuning: seed of the batches both copies see")
    parser.add_argument(
        "--inject", type=float, default=INJECTED, help="classifier: σ of every kind injected by hardware-aware tuning"
    )
    parser.add_argument("--points", type=int, default=2000, help="classifier: test images the accuracy is measured on")
    parser.add_argument(
        "--cosine",
        action="store_true",
        help="fine-tuning: decay the learning rate to 0 by a cosine (default: constant)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: threads only contend on a shared machine
    if args.study == "regression":
        regression(args.out, args.steps or 600, args.trials, args.lr or 0.03)
    elif args.study == "flow":
        flow(args.out, args.steps or 300, args.trials, args.lr or 1e-3, args.cosine, args.seed)
    else:
        classifier(
            args.out,
            args.base,
            args.steps or 300,
            args.trials,
            args.points,
            args.lr or 1e-3,
            args.cosine,
            args.seed,
            args.inject,
        )


if __name__ == "__main__":
    main()
