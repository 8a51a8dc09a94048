"""A run killed with SIGKILL resumes from its last checkpoint and ends exactly like an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from kirchhoffnet.config import write_config
from kirchhoffnet.training import CHECKPOINT, train
from kirchhoffnet.training._state import load_checkpoint

from .helpers import tiny_flow

SRC = Path(__file__).resolve().parents[2] / "src"


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = tiny_flow("train.epochs=12", "train.checkpoint_every_steps=2")
    path = write_config(config, tmp_path / "tiny.yaml")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "kirchhoffnet", "train", str(path), "--out", str(tmp_path / "killed")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = tmp_path / "killed" / CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode() if process.stderr else ""
    stopped_at = load_checkpoint(checkpoint)["step"]
    assert 0 < stopped_at < 48  # killed mid-run, after a checkpoint
    resumed = train(config, tmp_path / "killed", resume=True, progress=False)  # the dead process held no lock
    reference = train(config, tmp_path / "straight", progress=False)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.metrics["history"]["train_loss"] == reference.metrics["history"]["train_loss"]
