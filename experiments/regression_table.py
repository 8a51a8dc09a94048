"""The regression tables: the shipped configs' test MSE, or the paper's Table I with seeds.

    python experiments/regression_table.py                          # shipped configs: Friedman #1, Diabetes
    python experiments/regression_table.py --seeds 0 1 2 --out runs/seeds/regression   # the same, 3 seeds each
    python experiments/regression_table.py --housing housing.csv    # also a Boston or California CSV
    python experiments/regression_table.py --table1 --seeds 0 1 2 --out runs/table1   # Table I, both recipes

The shipped configs give one run directory per (data set, model) under --out, or per (data set,
model, seed) with --seeds, and report.md / report.json there. ``--table1`` trains
configs/regression/table1/ (the original protocol: MSE on the [0, 1] target) once per seed and recipe
(``--recipes``: ``original``, the configs' 40 epochs at a constant lr 1e-3, and ``tuned``,
kirchhoffnet's regression recipe, the same for circuits and MLPs), then writes table1.json (every
run's MSE, mean ± std per cell) and table1.md generated from it.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from common import CONFIGS, parser, run_jobs, train_unless_finished

MODELS = ("kirchhoffnet-small", "kirchhoffnet-medium", "kirchhoffnet-large", "mlp")
TABLE1_SIZES = ("small", "medium", "large")
TABLE1_KINDS = ("kirchhoffnet", "mlp")
RECIPES = {
    "original": [],
    "tuned": [
        "train.epochs=100",
        "train.lr=3.0e-3",
        "train.weight_decay=1.0e-4",
        "train.schedule={name: cosine, eta_min: 1.0e-5}",
        "train.grad_clip=5.0",
        "train.early_stopping={patience: 6}",
    ],
}
"""Overrides of the Table I configs' training section (theirs is the original recipe)."""


def table1(datasets: list[str], recipes: list[str], seeds: list[int], out: Path, overrides: list[str]) -> str:
    """Train every Table I cell once per seed and recipe (finished runs are kept), then tabulate."""
    for recipe in recipes:
        for name in datasets:
            for size in TABLE1_SIZES:
                for kind in TABLE1_KINDS:
                    config = CONFIGS / "regression" / "table1" / f"{name}-{kind}-{size}.yaml"
                    for seed in seeds:
                        run_dir = out / recipe / name / f"{kind}-{size}" / f"seed{seed}"
                        train_unless_finished(config, [*RECIPES[recipe], f"seed={seed}", *overrides], run_dir)
    results = collect(out)
    (out / "table1.json").write_text(json.dumps(results, indent=1) + "\n")
    text = table1_markdown(results)
    (out / "table1.md").write_text(text)
    return text


def collect(out: Path) -> dict[str, Any]:
    """``{recipe: {data: {model: cell}}}`` from the finished runs under ``out``; a cell holds each
    seed's test MSE (on the [0, 1] target), their mean and sample std, parameters and CPU seconds."""
    results: dict[str, Any] = {}
    for metrics_path in sorted(out.glob("*/*/*/seed*/metrics.json")):
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("status") not in ("finished", "stopped early"):
            continue
        model_dir = metrics_path.parent.parent
        recipe, name, model = model_dir.parent.parent.name, model_dir.parent.name, model_dir.name
        cell = (
            results.setdefault(recipe, {})
            .setdefault(name, {})
            .setdefault(model, {"num_params": metrics["num_params"], "seeds": [], "mse": [], "train_cpu_time_s": []})
        )
        cell["seeds"].append(metrics["seed"])
        cell["mse"].append(metrics["test"]["mse"])
        cell["train_cpu_time_s"].append(metrics["train_cpu_time_s"])
    for cell in (c for sets in results.values() for models in sets.values() for c in models.values()):
        cell["mse_mean"] = statistics.fmean(cell["mse"])
        cell["mse_std"] = statistics.stdev(cell["mse"]) if len(cell["mse"]) > 1 else 0.0
    return results


def table1_markdown(results: dict[str, Any]) -> str:
    """One markdown table per recipe: a row per (data, size), KirchhoffNet against the MLP, test MSE
    mean ± std over the seeds with the parameter counts; the better mean in bold."""
    lines = []
    for recipe, sets in results.items():
        lines += [
            f"**{recipe} recipe**: test MSE on the [0, 1] target, mean ± std over seeds",
            "",
            "| data | size | KirchhoffNet | MLP | seeds |",
            "|---|---|---|---|---:|",
        ]
        for name, models in sets.items():
            for size in TABLE1_SIZES:
                cells = [models.get(f"{kind}-{size}") for kind in TABLE1_KINDS]
                if any(c is None for c in cells):
                    continue
                best = min(c["mse_mean"] for c in cells)
                shown = [
                    ("**{}**" if c["mse_mean"] == best else "{}").format(f"{c['mse_mean']:.5f} ± {c['mse_std']:.5f}")
                    + f" ({c['num_params']:,} p.)"
                    for c in cells
                ]
                seeds = " / ".join(dict.fromkeys(str(len(c["mse"])) for c in cells))  # "3", or "3 / 2" if they differ
                lines.append(f"| {name} | {size} | {shown[0]} | {shown[1]} | {seeds} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/regression")
    args.add_argument("--datasets", nargs="+", default=["friedman", "diabetes"], help="friedman, diabetes, housing")
    args.add_argument("--housing", help="a Boston or California housing CSV to add as a third data set")
    args.add_argument("--table1", action="store_true", help="the paper's Table I (configs/regression/table1)")
    args.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES), help="with --table1")
    args.add_argument("--seeds", nargs="+", type=int, help="seeds per run (--table1: 0 1 2; else the configs' own)")
    options = args.parse_args()
    if options.table1:
        print(table1(options.datasets, options.recipes, options.seeds or [0, 1, 2], options.out, options.overrides))
        return
    sets = [(name, [f"data.name={name}"]) for name in options.datasets]
    if options.housing:
        sets.append(("housing", ["data.name=housing", f"data.path={options.housing}"]))
    seeded = [([f"seed={seed}"], f"seed{seed}") for seed in options.seeds] if options.seeds else [([], "")]
    jobs = [
        (CONFIGS / "regression" / f"{model}.yaml", [*data, *seed, *options.overrides], options.out / name / model / sub)
        for seed, sub in seeded
        for name, data in sets
        for model in MODELS
    ]
    print(run_jobs(jobs, options.out))


if __name__ == "__main__":
    main()
