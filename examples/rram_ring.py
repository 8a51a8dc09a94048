"""Train the tiny score network on a 2-D ring and sample it on a simulated RRAM analog solver.

Training is the shared trainer on ``configs/diffusion/ring.yaml`` (the same run as ``kirchhoffnet train
configs/diffusion/ring.yaml``, shortened). The network's three layers are then programmed as conductance
pairs into RRAM crossbars (with a relative programming noise σ); a closed analog loop of crossbars, ReLUs
and integrator capacitors solves the reverse-time diffusion SDE in 1 ms of physical time. Digital
Euler–Maruyama samples of the same model, and of the ideal ring, are drawn beside it. ``--fast`` (or
KIRCHHOFFNET_FAST=1) trains for 1,500 steps only.

    python examples/rram_ring.py [--fast]      # → runs/examples/rram_ring.png and the run rram_ring/
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import torch

import kirchhoffnet as kn
from kirchhoffnet.config import load_config
from kirchhoffnet.data.points import sample_ring
from kirchhoffnet.diffusion import analog_sample, kl_pooled, program_chip, sample
from kirchhoffnet.diffusion.plots import sample_panels
from kirchhoffnet.diffusion.run import load_run
from kirchhoffnet.rram import LoopSettings, RRAMDevice

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "diffusion" / "ring.yaml"
FULL = ["train.epochs=20"]  # the CLI's --set syntax: 20 × 1,000 steps (the config trains 40)
FAST = [  # 3 × 500 steps of batch 256, a short parameter average (0.999 would still remember the start)
    "train.epochs=3",
    "train.steps_per_epoch=500",
    "train.batch_size=256",
    "train.ema_decay=0.98",
    "sample.steps=200",  # the trainer's final KL: 1,000 probability-flow samples of 200 steps
    "evaluate.num_samples=1000",
]


def main(out: Path = Path("runs/examples"), fast: bool = False) -> dict[str, float]:
    """Train, sample digitally and on a programmed chip; returns the pooled-histogram KL of each vs the ring."""
    run_dir = out / "rram_ring"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run directory is never overwritten: start afresh
    kn.train(load_config(CONFIG, FAST if fast else FULL), run_dir, progress=not fast)
    model = load_run(run_dir).model  # the saved score model (the parameters' average)

    torch.set_num_threads(1)  # a 14-unit network runs fastest on one core; more threads only contend
    n, solver_steps = (1000, 200) if fast else (10_000, 2000)
    digital = sample(model, n, "euler", steps=solver_steps, seed=1)
    chip = program_chip(model, RRAMDevice(prog_noise=0.05), seed=3)  # seed 3 picks one chip's programming errors
    run = analog_sample(model, n, chip, LoopSettings(integration_time_s=1e-3, steps=solver_steps), mode="sde", seed=1)
    reference = sample_ring(n, seed=2)
    panels = {"ring (data)": reference, "digital Euler": digital, "RRAM loop, σ = 5 %": run.samples}
    sample_panels({name: points.numpy() for name, points in panels.items()}).savefig(out / "rram_ring.png")
    kls = {"digital": kl_pooled(digital, reference), "analog": kl_pooled(run.samples, reference)}
    print(f"KL vs the ring (pooled histogram): digital {kls['digital']:.3f}, analog {kls['analog']:.3f}")
    print(f"crossbar energy of the analog run: {run.report.crossbar_energy_j:.3g} J")
    return kls


if __name__ == "__main__":
    main(fast="--fast" in sys.argv or os.environ.get("KIRCHHOFFNET_FAST") == "1")
