"""Train the tiny score network on a 2-D ring and sample it on a simulated RRAM analog solver.

The network's three layers are programmed as conductance pairs into RRAM crossbars (with a relative
programming noise σ); a closed analog loop of crossbars, ReLUs and integrator capacitors then solves
the reverse-time diffusion SDE in 1 ms of physical time. Digital Euler–Maruyama samples of the same
model, and of the ideal ring, are drawn beside it. ``--fast`` trains for a few hundred steps only.

    python examples/rram_ring.py [--fast]      # → runs/examples/rram_ring.png
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from kirchhoffnet.diffusion import (
    VPSDE,
    ScoreModel,
    ScoreNet,
    TrainSettings,
    analog_sample,
    kl_pooled,
    program_chip,
    sample,
    sample_ring,
    train_score,
)
from kirchhoffnet.diffusion.plots import sample_panels
from kirchhoffnet.rram import LoopSettings, RRAMDevice


def ring_batches(batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, None]:
    """Fresh ring points every step (the ring is a known distribution, not a fixed data set)."""
    return sample_ring(batch_size, seed=int(torch.randint(0, 2**62, (1,), generator=generator))), None


def main(out: Path = Path("runs/examples"), fast: bool = False) -> dict[str, float]:
    """Train, sample digitally and on a programmed chip; returns the pooled-histogram KL of each vs the ring."""
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a 14-unit network runs fastest on one core; more threads only contend
    net = ScoreNet(width=14, amplitude=5.0, parametrization="noise", noise_floor=0.04)
    model = ScoreModel(net, VPSDE(beta_min=0.01, beta_max=8.0, s_min=1e-3))
    # Fast mode: fewer, smaller steps, and a short weight average (0.999 would still remember the start).
    settings = TrainSettings(steps=1500, batch_size=256, ema_decay=0.98) if fast else TrainSettings(steps=20_000)
    train_score(model, ring_batches, settings, progress=not fast)

    n, solver_steps = (1000, 200) if fast else (10_000, 2000)
    digital = sample(model, n, "euler", steps=solver_steps, seed=1)
    chip = program_chip(model, RRAMDevice(prog_noise=0.05), seed=3)  # seed 3 picks one chip's programming errors
    run = analog_sample(model, n, chip, LoopSettings(integration_time_s=1e-3, steps=solver_steps), mode="sde", seed=1)
    reference = sample_ring(n, seed=2)
    sample_panels(
        {"ring (data)": reference.numpy(), "digital Euler": digital.numpy(), "RRAM loop, σ = 5 %": run.samples.numpy()},
        out / "rram_ring.png",
    )
    kls = {"digital": kl_pooled(digital, reference), "analog": kl_pooled(run.samples, reference)}
    print(f"KL vs the ring (pooled histogram): digital {kls['digital']:.3f}, analog {kls['analog']:.3f}")
    print(f"crossbar energy of the analog run: {run.report.crossbar_energy_j:.3g} J")
    return kls


if __name__ == "__main__":
    main(fast="--fast" in sys.argv or os.environ.get("KIRCHHOFFNET_FAST") == "1")
