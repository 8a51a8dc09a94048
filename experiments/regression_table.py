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
run's MSE; the README's record, results/table1.json) and table1.md generated from it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import readme_results

from common import CONFIGS, parser, run_jobs, train_unless_finished

MODELS = ("kirchhoffnet-small", "kirchhoffnet-medium", "kirchhoffnet-large", "mlp")
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
    """Train every Table I cell once per seed and recipe (finished runs are kept), then write table1.json, the
    README's record of them (experiments/readme_results.py), and table1.md, its table."""
    for recipe in recipes:
        for name in datasets:
            for size in readme_results.TABLE1_SIZES:
                for kind in readme_results.TABLE1_KINDS:
                    config = CONFIGS / "regression" / "table1" / f"{name}-{kind}-{size}.yaml"
                    for seed in seeds:
                        run_dir = out / recipe / name / f"{kind}-{size}" / f"seed{seed}"
                        train_unless_finished(config, [*RECIPES[recipe], f"seed={seed}", *overrides], run_dir)
    command = shlex.join(["python", "experiments/regression_table.py", *sys.argv[1:]])
    record = readme_results.collect("table1", out, command)
    (out / "table1.json").write_text(json.dumps(record, indent=1) + "\n")
    text = readme_results.table1(record)
    (out / "table1.md").write_text(text + "\n")
    return text


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
