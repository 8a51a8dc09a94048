"""Train a continuous normalizing flow (a 2-slice KirchhoffNet) on the two-moons distribution.

The same run as ``kirchhoffnet train configs/flow2d/twomoon.yaml``, from Python. ``--fast`` (or
KIRCHHOFFNET_FAST=1) trains for seconds on a small sample: the samples only begin to bend into moons.

    python examples/train_twomoon.py [--fast]      # → runs/examples/twomoon/{samples.png,metrics.json,...}
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import kirchhoffnet as kn
from kirchhoffnet.config import load_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flow2d" / "twomoon.yaml"
FAST = [  # the CLI's --set syntax: fewer, smaller epochs, a looser solver, a smaller held-out set
    "train.epochs=4",
    "train.batch_size=128",
    "train.validate_every=1",
    "data.train_size=1024",
    "data.val_size=256",
    "data.test_size=1000",
    "solver.rtol=1e-3",
    "solver.atol=1e-3",
]


def main(out: Path = Path("runs/examples"), fast: bool = False) -> dict[str, float]:
    """Train, evaluate on held-out points and plot; returns the held-out NLL per epoch's end (nats)."""
    run_dir = out / "twomoon"
    shutil.rmtree(run_dir, ignore_errors=True)  # a run directory is never overwritten: start afresh
    config = load_config(CONFIG, FAST if fast else [])
    result = kn.train(config, run_dir, progress=not fast)
    history = result.metrics["history"]
    first, last = history["val_loss"][0], history["val_loss"][-1]
    print(f"validation NLL {first:.3f} → {last:.3f} nats; test NLL {result.metrics['test']['nll_nats']:.3f}")
    print(f"wrote {run_dir}/samples.png, loss.png, metrics.json and model.safetensors")
    return {"val_nll_first": first, "val_nll_last": last, "test_nll": result.metrics["test"]["nll_nats"]}


if __name__ == "__main__":
    main(fast="--fast" in sys.argv or os.environ.get("KIRCHHOFFNET_FAST") == "1")
