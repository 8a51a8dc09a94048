"""Killing ``kirchhoffnet train`` with SIGKILL at chosen or random moments, and checking what it leaves."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from kirchhoffnet.checkpoint import RUN_MODEL
from kirchhoffnet.io._atomic import TMP_SUFFIX
from kirchhoffnet.training import CHECKPOINT
from kirchhoffnet.training._state import load_checkpoint
from kirchhoffnet.training.rundir import LOCK, METRICS

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("crash_driver.py")


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def start(config: Path, run_dir: Path, *faults: str) -> subprocess.Popen[bytes]:
    """``kirchhoffnet train`` in a subprocess, resuming when ``run_dir`` already holds a checkpoint."""
    resume = ["--resume"] if (run_dir / CHECKPOINT).is_file() else []
    command = [sys.executable, str(DRIVER), *faults, "--", "train", str(config), "--out", str(run_dir), *resume]
    return subprocess.Popen(command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_until_training(process: subprocess.Popen[bytes], run_dir: Path, timeout_s: float = 300.0) -> bool:
    """Wait until the child holds the run directory's lock (its pid is in ``.lock``); False if it ended first."""
    deadline = time.monotonic() + timeout_s
    lock = run_dir / LOCK
    while process.poll() is None and time.monotonic() < deadline:
        if lock.is_file() and lock.read_text().strip() == str(process.pid):
            return True
        time.sleep(0.02)
    return False


def check_intact(run_dir: Path) -> list[str]:
    """Every result file present parses completely; returns the leftover temporary files (torn writes)."""
    if (run_dir / CHECKPOINT).is_file():
        state = load_checkpoint(run_dir / CHECKPOINT)  # CheckpointError on a torn file
        assert all(torch.isfinite(t).all() for t in state["model"].values())
    if (run_dir / METRICS).is_file():
        json.loads((run_dir / METRICS).read_text())  # JSONDecodeError on a torn file
    if (run_dir / RUN_MODEL).is_file():
        load_file(run_dir / RUN_MODEL)
    return sorted(p.name for p in run_dir.glob(f".*{TMP_SUFFIX}"))


@dataclass
class KillLog:
    """What a sweep did: kills by kind, kills that left a torn temporary file, processes started."""

    random_kills: int = 0
    write_kills: int = 0
    inside_write: int = 0
    starts: int = 0
    delays: list[float] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return self.random_kills + self.write_kills


def kill_and_resume(config: Path, run_dir: Path, kills: int, seed: int, max_delay_s: float = 2.5) -> KillLog:
    """Run to completion, SIGKILLing the run ``kills`` times: alternately at a random moment after it
    took the lock (with slowed renames, so that some kills land inside a write) and inside the
    N-th fsync of a random write (a torn temporary file). Every restart resumes from the checkpoint."""
    rng = random.Random(seed)
    log = KillLog()
    while True:
        inside = log.kills < kills
        tear = inside and log.kills % 2 == 1
        faults = ["--kill-at-fsync", str(rng.randint(1, 6))] if tear else ["--slow-replace", "0.15"]
        process = start(config, run_dir, *faults)
        log.starts += 1
        if inside and not tear and wait_until_training(process, run_dir):
            delay = rng.uniform(0.0, max_delay_s)
            log.delays.append(delay)
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
        stderr = process.communicate()[1].decode()
        if process.returncode == 0:
            check_intact(run_dir)
            return log
        assert process.returncode == -signal.SIGKILL, stderr
        if tear:
            log.write_kills += 1
        else:
            log.random_kills += 1
        log.inside_write += bool(check_intact(run_dir))


def comparable(metrics: Any) -> Any:
    """metrics.json without what legitimately differs between runs: wall and CPU times, and the sessions
    (a resumed run was trained by two processes, started at other times)."""
    if isinstance(metrics, dict):
        return {k: comparable(v) for k, v in metrics.items() if not k.endswith("time_s") and k != "sessions"}
    if isinstance(metrics, list):
        return [comparable(v) for v in metrics]
    return metrics


def assert_close(a: Any, b: Any, where: str = "metrics", tol: float = 1e-6) -> None:
    """Equal structure; numbers within ``tol`` (relative to max(1, |b|))."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}", tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for k, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{where}[{k}]", tol)
    elif isinstance(a, float) and isinstance(b, float | int):
        assert math.isclose(a, b, rel_tol=tol, abs_tol=tol), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Same parameters (1e-6) and the same metrics.json, times aside, as the uninterrupted reference."""
    got, want = load_file(run_dir / RUN_MODEL), load_file(reference / RUN_MODEL)
    assert sorted(got) == sorted(want)
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=0, atol=1e-6), name
    metrics = json.loads((run_dir / METRICS).read_text())
    expected = json.loads((reference / METRICS).read_text())
    assert metrics["status"] == "finished"
    assert_close(comparable(metrics), comparable(expected))
