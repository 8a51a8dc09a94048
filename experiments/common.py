"""Running a list of training jobs into one directory and tabulating them (shared by the scripts here)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import kirchhoffnet as kn
from kirchhoffnet.config import load_config
from kirchhoffnet.training import CHECKPOINT
from kirchhoffnet.training.report import write_report

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def parser(description: str, out: str) -> argparse.ArgumentParser:
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--out", type=Path, default=Path(out), help=f"directory of the runs and the report ({out})")
    args.add_argument("--set", dest="overrides", action="append", default=[], help="override for every run: key=value")
    return args


def run_jobs(jobs: list[tuple[Path, list[str], Path]], out: Path) -> str:
    """Train each (config, overrides, run directory) unless it already finished, then write the report.

    An interrupted run is resumed; a finished one is kept, so re-running the script continues the table.
    """
    for config_path, overrides, run_dir in jobs:
        train_unless_finished(config_path, overrides, run_dir)
    _, _, text = write_report([run_dir for *_, run_dir in jobs], out)
    return text


def train_unless_finished(config_path: Path, overrides: list[str], run_dir: Path, progress: bool = True) -> None:
    """Train ``config_path`` with ``overrides`` (the CLI's ``--set key=value``) into ``run_dir`` unless that
    run already finished; an interrupted run (its ``checkpoint.pt``) is resumed."""
    metrics = run_dir / "metrics.json"
    if metrics.is_file() and json.loads(metrics.read_text()).get("status") in ("finished", "stopped early"):
        print(f"[done] {run_dir}", file=sys.stderr)
        return
    print(f"[train] {config_path.name} {' '.join(overrides)} -> {run_dir}", file=sys.stderr)
    config = load_config(config_path, overrides)
    result = kn.train(config, run_dir, resume=(run_dir / CHECKPOINT).is_file(), progress=progress)
    test = result.metrics["test"]
    key = result.metrics["primary_metric"]
    print(f"        {key} = {test[key]:.5g} in {result.metrics['train_wall_time_s']:.0f} s", file=sys.stderr)
