"""Crash safety: SIGKILL at random moments and inside checkpoint writes, then ``--resume``.

The sweep of 20+ kill points is ``slow``; run it with
``PYTHONPATH=src python -m pytest -m slow tests/reliability/test_crash.py -s`` (it prints its counts).
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.config import write_config
from kirchhoffnet.errors import TrainingError
from kirchhoffnet.training import CHECKPOINT, train
from kirchhoffnet.training._state import load_checkpoint
from kirchhoffnet.training.rundir import LOCK, RunLock

from ..training.helpers import tiny_flow
from .crash import assert_same_run, check_intact, kill_and_resume, start

EPOCHS = 12  # 4 steps per epoch, a checkpoint every 2 steps: 24 checkpoints to land between


@pytest.fixture(scope="module")
def config():
    return tiny_flow(f"train.epochs={EPOCHS}", "train.checkpoint_every_steps=2")


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    """The uninterrupted run with the same seed."""
    return train(config, tmp_path_factory.mktemp("reference") / "run", progress=False).run_dir


def test_a_kill_inside_a_checkpoint_write_keeps_the_previous_checkpoint(config, reference, tmp_path):
    path = write_config(config, tmp_path / "tiny.yaml")
    run_dir = tmp_path / "run"
    # fsync 1 is config.yaml, 2 the new metrics.csv, then each checkpoint is checkpoint.pt + metrics.json:
    # fsync 7 is the third checkpoint.pt, torn to half its size before the process dies.
    process = start(path, run_dir, "--kill-at-fsync", "7")
    stderr = process.communicate(timeout=600)[1].decode()
    assert process.returncode == -signal.SIGKILL, stderr
    leftovers = check_intact(run_dir)
    assert len(leftovers) == 1 and leftovers[0].startswith(f".{CHECKPOINT}.")  # the torn write, never renamed
    assert load_checkpoint(run_dir / CHECKPOINT)["step"] == 4  # the second checkpoint is intact
    train(config, run_dir, resume=True, progress=False)
    assert_same_run(run_dir, reference)
    assert check_intact(run_dir) == []  # the resumed run removed the dead writer's temporary file


def test_resume_before_any_checkpoint_says_there_is_nothing_to_resume(config, tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(TrainingError, match=r"nothing to resume in .*run: it holds no checkpoint.pt"):
        train(config, tmp_path / "run", resume=True, progress=False)


def test_a_run_directory_locked_by_another_process_is_refused(config, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(run_dir / LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode())\n"
            "print('locked', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        path = write_config(config, tmp_path / "tiny.yaml")
        result = CliRunner().invoke(app, ["train", str(path), "--out", str(run_dir)])
        assert result.exit_code == 1  # the run directory is busy: a runtime failure
        assert f"in use by another process (pid {holder.pid}); wait for it to end or choose another --out" in (
            result.output
        )
        assert not (run_dir / "config.yaml").exists()  # nothing was written into the busy directory
    finally:
        holder.kill()
        holder.wait()
    RunLock(run_dir).release()  # the kernel dropped the dead holder's lock: no stale lock remains


@pytest.mark.slow
def test_twenty_four_kills_at_random_moments_and_inside_writes(config, reference, tmp_path):
    path = write_config(config, tmp_path / "tiny.yaml")
    log = kill_and_resume(path, tmp_path / "run", kills=24, seed=7, max_delay_s=2.5)
    print(
        f"\nkill points survived: {log.kills} ({log.random_kills} at random moments, {log.write_kills} torn "
        f"writes); {log.inside_write} kills left a temporary file; {log.starts} processes"
    )
    assert log.kills >= 20
    assert_same_run(tmp_path / "run", reference)
