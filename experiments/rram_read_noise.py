"""Pooled KL of the analog loop's samples against read noise: the robustness of a trained ring run to the
fluctuation of every crossbar read (the programmed chip itself ideal).

    PYTHONPATH=src python experiments/rram_read_noise.py --run runs/ring
    PYTHONPATH=src python experiments/rram_read_noise.py --run runs/ring --levels 0 0.05 0.1 0.2 --solver analog

For each level, ``evaluate.num_samples`` samples of ``--solver`` (the reverse SDE on the loop by default, with the
run's seed) are scored against the run's reference points (``evaluate.reference_seed``) by ``kl_pooled``, as
``kirchhoffnet diffusion evaluate`` scores every solver; one level is also ``kirchhoffnet diffusion sample RUN
--solver analog --read-noise LEVEL``. Prints one JSON line and writes it to RUN/read_noise.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kirchhoffnet.diffusion.metrics import kl_or_none, kl_pooled
from kirchhoffnet.diffusion.run import load_run, reference_points
from kirchhoffnet.diffusion.sampling import sample_run
from kirchhoffnet.io import write_json_atomic


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--run", type=Path, required=True, help="a trained ring run directory")
    args.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2], help="read-noise σ values")
    args.add_argument("--solver", default="analog", help="analog (reverse SDE) or analog-ode")
    args.add_argument("--seed", type=int, default=None, help="sampling seed (default: the run's)")
    a = args.parse_args()
    run = load_run(a.run)
    reference = reference_points(run.config)
    seed = run.config.seed if a.seed is None else a.seed
    rows = []
    for level in a.levels:
        x, info = sample_run(run, len(reference), a.solver, seed=seed, read_noise=level)
        rows.append(
            {"read_noise": level, "kl_pooled": kl_or_none(kl_pooled, x, reference), "wall_s": info["wall_time_s"]}
        )
        print(f"read noise {level:g}: KL pooled {rows[-1]['kl_pooled']}", flush=True)
    result = {"run": str(a.run), "solver": a.solver, "seed": seed, "num_samples": len(reference), "curve": rows}
    write_json_atomic(a.run / "read_noise.json", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
