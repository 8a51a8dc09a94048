"""Run every benchmark in turn (each prints its own table with ratios against its baseline).

    python benchmarks/run_all.py [--original-results PATH/TO/kirchhoffnet/src/results]

The original results directory (from github.com/zhengqigao/kirchhoffnet) supplies the MNIST and
MNIST-generation checkpoints; without it those benchmarks use random parameters on the same circuits.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original-results", type=Path)
    args = parser.parse_args()
    runs = [
        ["cnf_training_step.py"],
        ["rhs_evaluation.py"],
        ["exact_trace.py"] + (["--original", str(args.original_results / "genmnist")] if args.original_results else []),
        ["mnist_classification.py"]
        + (["--original", str(args.original_results / "mnist")] if args.original_results else []),
        ["jax_comparison.py"] + (["--original", str(args.original_results / "mnist")] if args.original_results else []),
    ]
    failed = []
    for run in runs:
        print(f"\n$ python benchmarks/{' '.join(run)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]]).returncode:
            failed.append(run[0])
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
