"""Tables across runs: one row per run, and a data set × model table of the main metric."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

from kirchhoffnet._textfile import read_json_mapping, require_types
from kirchhoffnet.errors import TrainingError, shown
from kirchhoffnet.io import write_json_atomic, write_text_atomic
from kirchhoffnet.training.rundir import METRICS

# How each task's main metric is written in a table.
_LABELS = {
    "nll_nats": "test NLL (nats)",
    "mse": "test MSE (standardised)",
    "accuracy": "test accuracy",
    "kl_nats": "KL(q||p) (nats)",
    "bits_per_dim": "test bits/dim",
    "kl_pooled": "KL pooled (nats)",
    "judge_accuracy": "judge accuracy",
}


def collect(run_dirs: list[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """One summary row per finished run directory."""
    rows = []
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        test = metrics["test"]
        key = metrics["primary_metric"]
        stderr = next((test[k] for k in _stderr_keys(key) if k in test), None)
        rows.append(
            {
                "run_dir": str(run_dir),
                "name": metrics["name"],
                "task": metrics["task"],
                "data": test.get("dataset") or test.get("potential") or test.get("data") or "",
                "metric": key,
                "value": test[key],
                "stderr": stderr,
                "num_params": metrics["num_params"],
                "epochs": metrics["epochs_completed"],
                "train_wall_time_s": metrics["train_wall_time_s"],
                "train_cpu_time_s": metrics.get("train_cpu_time_s"),
                "nfe_forward_per_step": metrics.get("nfe_forward_per_step"),
                "status": metrics["status"],
            }
        )
    return rows


# What a table row takes from metrics.json, and the types it needs them in.
_NUMBER = (int, float)
_OPTIONAL_NUMBER = (int, float, type(None))
_ROW_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "task": str,
    "primary_metric": str,
    "num_params": int,
    "epochs_completed": int,
    "train_wall_time_s": _NUMBER,
}
_REWRITE = "was it cut short or edited by hand? `kirchhoffnet train RUN_DIR --resume` writes it again"


def read_metrics(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``metrics.json`` of a finished run, with everything a table row uses present and typed.

    A run whose file is missing, unfinished, truncated or edited into another shape is an error
    naming it, as an unfinished run always was: a table that silently leaves a run out misleads.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise TrainingError(f"{run_dir} holds no {METRICS}; is it a run directory?")
    metrics = read_json_mapping(
        path, error=TrainingError, label="metrics file", types={"status": str}, rewrite=_REWRITE
    )
    test = metrics.get("test")
    if not test:
        raise TrainingError(f"{run_dir} has not finished (status: {shown(metrics['status'])}); no test metrics yet")
    typed: dict[str, type | tuple[type, ...]] = {**_ROW_KEYS, "test": dict}
    typed |= {k: _OPTIONAL_NUMBER for k in ("train_cpu_time_s", "nfe_forward_per_step") if k in metrics}
    require_types(metrics, typed, path, TrainingError, _REWRITE)
    key = metrics["primary_metric"]
    typed = {k: (str, type(None)) for k in ("dataset", "potential") if k in test}
    typed |= {k: _OPTIONAL_NUMBER for k in (key, *_stderr_keys(key)) if k == key or k in test}
    require_types(test, typed, f"{path} (test)", TrainingError, _REWRITE)
    return metrics


def _stderr_keys(key: str) -> tuple[str, str]:
    """Where a metric's standard error is: ``nll_nats`` -> ``nll_nats_stderr`` or ``nll_stderr``."""
    return f"{key}_stderr", f"{key.split('_')[0]}_stderr"


def _number(metric: str, value: float, digits: int = 4) -> str:
    return f"{100 * value:.2f} %" if metric == "accuracy" else f"{value:.{digits}g}"


def _value(row: dict[str, Any]) -> str:
    if row["value"] is None:  # a non-finite metric is written as null
        return "n/a"
    value = _number(row["metric"], row["value"])
    return value if row["stderr"] is None else f"{value} ± {row['stderr']:.2g}"


def _cell(runs: list[dict[str, Any]]) -> str:
    """One run's value, or for several runs of one config (seeds) their mean ± sample standard deviation and n:
    a table cell must not show one run of several as if it were the config's result."""
    params = f"{runs[0]['num_params']:,} p."
    if len(runs) == 1:
        return f"{_value(runs[0])} ({params})"
    values = [r["value"] for r in runs if r["value"] is not None]
    failed = f", {len(runs) - len(values)} n/a" if len(values) < len(runs) else ""
    if not values:
        return f"n/a (n = {len(runs)}, {params})"
    metric = runs[0]["metric"]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    mean = _number(metric, statistics.fmean(values))
    return f"{mean} ± {_number(metric, spread, 2)} (n = {len(values)}{failed}, {params})"


def markdown(rows: list[dict[str, Any]]) -> str:
    """A run table, and for several models on the same data a data × model table."""
    lines = [
        "| run | task | data | metric | value | parameters | epochs | train wall / CPU time (s) |",
        "|---|---|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['task']} | {r['data']} | {_LABELS.get(r['metric'], r['metric'])} | {_value(r)} "
            f"| {r['num_params']:,} | {r['epochs']} | {r['train_wall_time_s']:.0f} / {r['train_cpu_time_s'] or 0:.0f} |"
        )
    names = list(dict.fromkeys(r["name"] for r in rows))
    data = list(dict.fromkeys(r["data"] for r in rows))
    if len(names) > 1 and len(data) < len(rows):
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            groups.setdefault((r["data"], r["name"]), []).append(r)
        metric = _LABELS.get(rows[0]["metric"], rows[0]["metric"])
        lines += ["", f"{metric} (several runs of a config: mean ± std, n runs), parameters in brackets:", ""]
        lines += ["| data | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for d in data:
            lines.append(
                f"| {d} | " + " | ".join(_cell(groups[d, n]) if (d, n) in groups else "–" for n in names) + " |"
            )
    return "\n".join(lines) + "\n"


def write_report(run_dirs: list[str | os.PathLike[str]], out: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """``report.md`` and ``report.json`` in ``out``; returns their paths and the Markdown."""
    rows = collect(run_dirs)
    text = markdown(rows)
    out = Path(out)
    return write_text_atomic(out / "report.md", text), write_json_atomic(out / "report.json", rows), text
