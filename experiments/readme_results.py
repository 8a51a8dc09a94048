"""The README's result tables, generated from the measured figures in results/*.json.

    python experiments/readme_results.py                # rewrite README.md's tables between the markers
    python experiments/readme_results.py --check        # exit 1 if README.md is not what results/ gives
    python experiments/readme_results.py --collect regression runs/seeds/regression \\
        --command "python experiments/regression_table.py --seeds 0 1 2 --out runs/seeds/regression"

Each table sits between ``<!-- results:NAME -->`` and ``<!-- /results -->`` and comes from
results/NAME.json: every figure per seed, the command that made them, the machine and the date, so the
README states a mean ± std over n seeds that anyone can re-measure, and cannot drift from the record.
``--collect NAME DIR`` writes results/NAME.json from the finished run directories ``DIR/**/seedS``; with
``--merge`` the cells found in DIR replace their namesakes and the record's other cells stay (runs of one table
made at different times, on the same kind of machine: its one provenance line names one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"
MARKER = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.DOTALL)
SCRIPT = "python experiments/readme_results.py"


def mean_std(values: list[float], scale: float = 1.0, figures: int = 3) -> str:
    """``mean ± std`` (sample std) to ``figures`` significant figures of the mean; a single value alone."""
    xs = [v * scale for v in values]
    mean = statistics.fmean(xs)
    decimals = max(0, figures - 1 - math.floor(math.log10(abs(mean)))) if mean else figures
    if len(xs) == 1:
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {statistics.stdev(xs):.{decimals}f}"


def seeds_label(seeds: list[int]) -> str:
    """``n = 3 (seeds 0, 1, 2)``, or ``1 seed (seed 0)``: the n stated beside every figure."""
    if len(seeds) == 1:
        return f"1 seed (seed {seeds[0]})"
    return f"n = {len(seeds)} (seeds {', '.join(map(str, seeds))})"


def provenance(record: dict[str, Any]) -> str:
    """The line under a table: the command that made its figures, where and when, and the JSON they are in."""
    return (
        f"`{record['command']}`; {record['machine']}, {record['date']}; "
        f"figures per seed in results/{record['experiment']}.json, table by `{SCRIPT}`."
    )


def _cell(record: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        return record["cells"][key]
    except KeyError:
        raise SystemExit(f"results/{record['experiment']}.json has no cell {key!r}") from None


def regression(record: dict[str, Any]) -> str:
    models = ("kirchhoffnet-small", "kirchhoffnet-medium", "kirchhoffnet-large", "mlp")
    lines = [
        "| data | circuit small | circuit medium | circuit large | MLP | n |",
        "|---|---|---|---|---|---|",
    ]
    for data in ("friedman", "diabetes"):
        cells = [_cell(record, f"{data}/{model}") for model in models]
        means = [statistics.fmean(c["values"]["mse"]) for c in cells]
        shown = [
            ("**{}**" if mean == min(means) else "{}").format(mean_std(c["values"]["mse"]))
            + f" ({c['num_params']:,} p.)"
            for c, mean in zip(cells, means, strict=True)
        ]
        lines.append(f"| {data} | {' | '.join(shown)} | {seeds_label(cells[0]['seeds'])} |")
    return "\n".join(lines) + "\n\n" + _scattered(record) + provenance(record)


def _scattered(record: dict[str, Any]) -> str:
    """Each cell whose seeds differ more than 10×, per seed: a mean ± std alone would hide a run that stalled."""
    shown = [
        f"{key} {' / '.join(f'{v:.3g}' for v in cell['values']['mse'])}"
        for key, cell in record["cells"].items()
        if max(cell["values"]["mse"]) > 10 * min(cell["values"]["mse"])
    ]
    return f"Seeds more than 10× apart, per seed: {'; '.join(shown)}. " if shown else ""


TABLE1_SIZES = ("small", "medium", "large")
TABLE1_KINDS = ("kirchhoffnet", "mlp")  # the circuit of each size, and the MLP of its parameter count


def table1(record: dict[str, Any]) -> str:
    """The paper's Table I on its protocol: each circuit size against the MLP of its parameter count, under the
    original recipe and the tuned one, and a verdict counted from the figures, so it cannot claim more than they do.
    A lower mean is counted as clear when the gap exceeds both cells' standard deviations."""
    lines = [
        "| recipe | data | size | KirchhoffNet | MLP | train CPU s, circuit / MLP | n |",
        "|---|---|---|---|---|---|---|",
    ]
    tally: dict[str, list[str]] = {"KirchhoffNet": [], "MLP": []}
    clear: dict[str, int] = {"KirchhoffNet": 0, "MLP": 0}
    circuits = [k.split("/") for k in record["cells"] if k.split("/")[-1].startswith("kirchhoffnet-")]
    rows = [(recipe, data, model.removeprefix("kirchhoffnet-")) for recipe, data, model in circuits]
    for recipe, data, size in sorted(rows, key=lambda row: (row[0], row[1], TABLE1_SIZES.index(row[2]))):
        cells = [_cell(record, f"{recipe}/{data}/{kind}-{size}") for kind in TABLE1_KINDS]
        mses = [c["values"]["mse"] for c in cells]
        means = [statistics.fmean(m) for m in mses]
        winner = ("KirchhoffNet", "MLP")[means.index(min(means))]
        tally[winner].append(f"{recipe} {data} {size}")
        stds = [statistics.stdev(m) if len(m) > 1 else 0.0 for m in mses]
        clear[winner] += abs(means[0] - means[1]) > max(stds)
        shown = [
            ("**{}**" if mean == min(means) else "{}").format(mean_std(m)) + f" ({c['num_params']:,} p.)"
            for c, m, mean in zip(cells, mses, means, strict=True)
        ]
        cpu = " / ".join(
            f"{t:.1f}" if t < 10 else f"{t:.0f}" for t in (statistics.fmean(c["train_cpu_s"]) for c in cells)
        )
        lines.append(
            f"| {recipe} | {data} | {size} | {shown[0]} | {shown[1]} | {cpu} | {seeds_label(cells[0]['seeds'])} |"
        )
    total = sum(map(len, tally.values()))
    verdict = " ".join(
        f"{who} has the lower mean in {len(won)} of {total} cells"
        + (f": {', '.join(won)}" if len(won) <= total // 2 else "")
        + f" ({clear[who]} by more than either's standard deviation)."
        if won
        else f"{who} has the lower mean in none of the {total} cells."
        for who, won in tally.items()
    )
    return "\n".join(lines) + f"\n\n**Where KirchhoffNet wins.** {verdict}\n\n" + provenance(record)


def fashion_mnist(record: dict[str, Any]) -> str:
    cell = _cell(record, "fashion_mnist")
    return (
        "| model | parameters | test accuracy after 1 epoch | n |\n|---|---|---|---|\n"
        f"| 59-node 7×7 circuit (configs/classify/fashion_mnist_small.yaml) | {cell['num_params']:,} | "
        f"{mean_std(cell['values']['accuracy'], 100)} % | {seeds_label(cell['seeds'])} |\n\n" + provenance(record)
    )


PAPER_MODELS = {  # cell: (model, the solve it trained on)
    "fashion_mnist": ("original MNIST circuit (28×28 `mix_connect`, 4×4 windows, 50 hidden nodes, 2 slices)", "RK4"),
    "fashion_mnist_dopri5": ("the same, then fine-tuned on the ODE (`--fine-tune`)", "dopri5"),
    "fashion_mnist_odenet": ("ODE-Net of its size (configs/classify/fashion_mnist_odenet.yaml)", "RK4"),
}


def fashion_mnist_paper(record: dict[str, Any]) -> str:
    """The paper's topology on a CPU budget: accuracy on the solve it trained with, and under dopri5, the circuit's
    ODE followed to its tolerance (a model trained on dopri5 has one figure for both)."""
    lines = [
        "| model | parameters | epochs | trained on | test accuracy on that solve | under dopri5 | per seed "
        "| train CPU min | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, (label, solve) in PAPER_MODELS.items():
        if key not in record["cells"]:
            continue
        cell = record["cells"][key]
        values = cell["values"]
        ode = values["accuracy"] if solve == "dopri5" else values["accuracy_dopri5"]
        epochs = "/".join(map(str, sorted(set(cell["epochs"]))))
        lines.append(
            f"| {label} | {cell['num_params']:,} | {epochs} | {solve} | {mean_std(values['accuracy'], 100)} % | "
            f"**{mean_std(ode, 100)} %** | {' / '.join(f'{100 * v:.1f}' for v in ode)} | "
            f"{statistics.fmean(cell['train_cpu_s']) / 60:.0f} (mean) | "
            f"{seeds_label(cell['seeds'])} |"
        )
    return "\n".join(lines) + "\n\n" + provenance(record)


def twomoon(record: dict[str, Any]) -> str:
    cell = _cell(record, "twomoon")
    cpu = statistics.fmean(cell["train_cpu_s"])
    return (
        "| data | steps | held-out NLL (nats) | train CPU s | n |\n|---|---|---|---|---|\n"
        f"| twomoon (configs/flow2d/twomoon.yaml, {cell['num_params']:,} parameters) | 1,200 | "
        f"{mean_std(cell['values']['nll_nats'], figures=4)} | {cpu:.0f} (mean) | {seeds_label(cell['seeds'])} |\n\n"
        + provenance(record)
    )


PAIRED_FIGURES = ("ours_nll_nats", "original_nll_nats", "difference_nats", "difference_stderr_nats")


def flow2d_seeds(record: dict[str, Any]) -> str:
    """The long 2-D flow runs with seeds, each against the original checkpoint on the same 20,000 points."""
    lines = [
        "| data | parameters | held-out NLL (nats) | on the paired points: original checkpoint | ours | "
        "ours − original, per seed (± s.e.) | steps | train CPU s | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, cell in record["cells"].items():
        values = cell["values"]
        paired = " / ".join(
            f"{d:+.3f} ± {e:.3f}"
            for d, e in zip(values["difference_nats"], values["difference_stderr_nats"], strict=True)
        )
        steps = "/".join(f"{n:,}" for n in sorted(set(cell["steps"])))
        lines.append(
            f"| {key} | {cell['num_params']:,} | **{mean_std(values['nll_nats'], figures=4)}** | "
            f"{statistics.fmean(values['original_nll_nats']):.4f} | {mean_std(values['ours_nll_nats'], figures=4)} | "
            f"{paired} | {steps} | {statistics.fmean(cell['train_cpu_s']):,.0f} (mean) | {seeds_label(cell['seeds'])} |"
        )
    return "\n".join(lines) + "\n\n" + provenance(record)


RING_SOLVERS = {
    "euler": "digital reverse SDE (score ×1.25)",
    "pf-ode": "digital PF-ODE (β ×2.5)",
    "analog": "analog loop, reverse SDE",
    "analog-ode": "analog loop, PF-ODE",
}


def ring(record: dict[str, Any]) -> str:
    cell = _cell(record, "ring")
    lines = ["| sampler (14-unit crossbar score network) | KL pooled | range over seeds | n |", "|---|---|---|---|"]
    for key, label in RING_SOLVERS.items():
        values = cell["values"][key]
        lines.append(
            f"| {label} | {mean_std(values)} | {min(values):.4f}–{max(values):.4f} | {seeds_label(cell['seeds'])} |"
        )
    return "\n".join(lines) + "\n\n" + provenance(record)


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "regression": regression,
    "table1": table1,
    "fashion_mnist": fashion_mnist,
    "fashion_mnist_paper": fashion_mnist_paper,
    "fashion_mnist_odenet": fashion_mnist_paper,  # its baseline, trained on another machine: its own provenance
    "twomoon": twomoon,
    "flow2d_seeds": flow2d_seeds,
    "ring": ring,
}


def load(name: str, results: Path = RESULTS) -> dict[str, Any]:
    path = results / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"README.md has a results:{name} marker but {path} does not exist")
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def render(readme: str, results: Path = RESULTS) -> str:
    """``readme`` with every marked table regenerated from ``results``; an unknown marker is an error."""

    def table(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"README.md marker results:{name} names no table (known: {', '.join(TABLES)})")
        return f"{match[1]}{TABLES[name](load(name, results))}\n{match[4]}"

    return MARKER.sub(table, readme)


def check(readme_path: Path = README, results: Path = RESULTS) -> str | None:
    """None when ``readme_path`` is what ``results`` gives, else the one-line reason."""
    text = readme_path.read_text()
    if not MARKER.search(text):
        return f"{readme_path.name} has no <!-- results:NAME --> markers"
    if render(text, results) != text:
        stale = [m["name"] for m in MARKER.finditer(text) if render(m[0], results) != m[0]]
        return f"{readme_path.name}'s tables {', '.join(stale)} differ from results/*.json: run `{SCRIPT}`"
    return None


def _machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    return f"{os.cpu_count()}-core VM ({model}), CPU only, one torch thread per run"


def collect(name: str, root: Path, command: str) -> dict[str, Any]:
    """results/NAME.json from the finished runs ``root/**/seedS``: a cell per folder above the seeds
    (``.`` for ``root`` itself), each metric's value per seed, parameters and train CPU seconds."""
    cells: dict[str, Any] = {}
    found = (p for p in root.rglob("seed*") if p.is_dir() and re.fullmatch(r"seed\d+", p.name))
    run_dirs = sorted(found, key=lambda p: (str(p.parent), int(p.name[4:])))
    if not run_dirs:
        raise SystemExit(f"{root} holds no seedS run directories")
    for run_dir in run_dirs:
        path = run_dir / "metrics.json"
        metrics = json.loads(path.read_text()) if path.is_file() else {}
        if metrics.get("status") not in ("finished", "stopped early"):
            raise SystemExit(f"{run_dir} did not finish (status {metrics.get('status')!r})")
        values = _values(run_dir, metrics)
        key = str(run_dir.parent.relative_to(root)) if run_dir.parent != root else name
        cell = cells.setdefault(
            key,
            {"seeds": [], "values": {k: [] for k in values}, "num_params": metrics["num_params"], "train_cpu_s": []},
        )
        cell.setdefault("epochs", []).append(metrics.get("epochs_completed"))
        cell.setdefault("steps", []).append(metrics.get("steps"))
        if set(values) != set(cell["values"]):
            raise SystemExit(f"{run_dir} has figures {sorted(values)}, its cell's other seeds {sorted(cell['values'])}")
        cell["seeds"].append(metrics["seed"])
        for k, v in values.items():
            cell["values"][k].append(v)
        cell["train_cpu_s"].append(round(metrics["train_cpu_time_s"], 1))
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    return {"experiment": name, "command": command, "machine": _machine(), "date": date, "cells": cells}


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s cells over ``old``'s, under ``new``'s command and date; refused across machines."""
    if old["machine"] != new["machine"]:
        raise SystemExit(f"--merge: the record was measured on {old['machine']!r}, this machine is {new['machine']!r}")
    return {**new, "cells": {**old["cells"], **new["cells"]}}


def _values(run_dir: Path, metrics: dict[str, Any]) -> dict[str, float]:
    """The figures of one run: its primary test metric (and under the solve it was re-scored with, where it
    was), or a diffusion run's KL of every sampler."""
    evaluation = run_dir / "evaluation.json"
    if evaluation.is_file():
        solvers = json.loads(evaluation.read_text())
        return {key: solvers[key]["kl_pooled"] for key in RING_SOLVERS}
    key = metrics["primary_metric"]
    values = {key: metrics["test"][key]}
    against = run_dir / "paired.json"  # experiments/flow2d_long.py: the original checkpoint on the same points
    if against.is_file():
        paired = json.loads(against.read_text())
        values.update({k: paired[k] for k in PAIRED_FIGURES})
    rescored = run_dir / "eval" / "metrics.json"  # `kirchhoffnet eval RUN --set solver...`: under another solve
    if rescored.is_file() and "solver" in (again := json.loads(rescored.read_text())):
        values[f"{key}_{again['solver']['method']}"] = again[key]
    return values


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="exit 1 if README.md differs from what results/ gives")
    args.add_argument("--collect", nargs=2, metavar=("NAME", "DIR"), help="write results/NAME.json from DIR's runs")
    args.add_argument("--command", help="with --collect: the command that trained DIR's runs (all the record's)")
    args.add_argument("--merge", action="store_true", help="with --collect: keep the record's cells not in DIR")
    options = args.parse_args()
    if options.collect:
        if not options.command:
            args.error("--collect needs --command, the command that made the runs")
        name, root = options.collect
        record = collect(name, Path(root), options.command)
        if options.merge:
            record = merge(load(name), record)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        return
    if options.check:
        problem = check()
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(1)
        return
    README.write_text(render(README.read_text()))


if __name__ == "__main__":
    main()
