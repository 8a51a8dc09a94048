"""The 2-D generation table: held-out NLL (nats) of a CNF on each toy distribution.

    python experiments/flow2d_table.py                                  # all 8 data sets, shipped budgets
    python experiments/flow2d_table.py --sets twomoon 8gaussians --set train.epochs=50

Writes one run directory per data set under --out and report.md / report.json there.
"""

from __future__ import annotations

from common import CONFIGS, parser, run_jobs

SETS = ("twomoon", "8gaussians", "pinwheel", "swissroll", "circle", "2spirals", "checkerboard", "rings")


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/flow2d")
    args.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS, help="data sets to train")
    options = args.parse_args()
    jobs = [(CONFIGS / "flow2d" / f"{name}.yaml", options.overrides, options.out / name) for name in options.sets]
    print(run_jobs(jobs, options.out))


if __name__ == "__main__":
    main()
