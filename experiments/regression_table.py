"""The regression table: test MSE of KirchhoffNet small / medium / large and an MLP baseline.

    python experiments/regression_table.py                          # Friedman #1 and Diabetes
    python experiments/regression_table.py --housing housing.csv    # also a Boston or California CSV

Writes one run directory per (data set, model) under --out and report.md / report.json there.
"""

from __future__ import annotations

from common import CONFIGS, parser, run_jobs

MODELS = ("kirchhoffnet-small", "kirchhoffnet-medium", "kirchhoffnet-large", "mlp")


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/regression")
    args.add_argument("--datasets", nargs="+", default=["friedman", "diabetes"], help="friedman, diabetes")
    args.add_argument("--housing", help="a Boston or California housing CSV to add as a third data set")
    options = args.parse_args()
    sets = [(name, [f"data.name={name}"]) for name in options.datasets]
    if options.housing:
        sets.append(("housing", ["data.name=housing", f"data.path={options.housing}"]))
    jobs = [
        (CONFIGS / "regression" / f"{model}.yaml", [*data, *options.overrides], options.out / name / model)
        for name, data in sets
        for model in MODELS
    ]
    print(run_jobs(jobs, options.out))


if __name__ == "__main__":
    main()
