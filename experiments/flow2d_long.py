"""The long 2-D flow runs at the original circuit sizes, with seeds, each scored beside the original authors'
checkpoint on the same points.

    python experiments/flow2d_long.py --sets twomoon 8gaussians --seeds 0 1 2 --out runs/seeds/flow2d_long
    python experiments/flow2d_long.py --sets pinwheel --seeds 0 1 2 --original pinwheel=DIR --out runs/seeds/flow2d_long

Trains DIR/SET/seedS on the long budget (LONG: twomoon's shipped config is the few-minute main job, so its long run
takes more data and epochs; 8gaussians' and pinwheel's configs are the long runs) unless it already finished. Then
the run and the original checkpoint (data/original/SET, or --original SET=DIR: pinwheel's is
`src/results/pinwheel` of github.com/zhengqigao/kirchhoffnet) are scored on the same fresh points,
two sets of 10,000 drawn with seeds 7 and 8, each under its own config's solve (dopri5 at 1e-4 for both): each test
set alone carries a standard error of about 0.01 nats, the per-point difference ours − original about a fifth of
that. RUN/paired.json holds that difference (mean and standard error over the 20,000 points), which
`readme_results.py --collect` reads beside the run's own test NLL.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from common import CONFIGS, parser, run_jobs
from kirchhoffnet import Flow
from kirchhoffnet.compat import load_original
from kirchhoffnet.data.toy2d import sample_toy
from kirchhoffnet.tasks.base import batched
from kirchhoffnet.training import open_run

ROOT = Path(__file__).resolve().parents[1]
LONG = {
    "twomoon": ["data.train_size=65536", "train.epochs=47", "train.validate_every=4"],
    "8gaussians": [],
    "pinwheel": [],
}
POINTS, POINT_SEEDS = 10_000, (7, 8)
PAIRED = "paired.json"


def nll(flow: Flow, points: torch.Tensor, batch: int = 2_000) -> torch.Tensor:
    """Per-point negative log-likelihood in nats, without gradients."""
    dtype = next(flow.parameters()).dtype
    with torch.no_grad():
        return batched(lambda chunk: -flow.log_prob(chunk.to(dtype)).double(), points, batch)


def repo_relative(path: Path) -> Path:
    """A path inside the repository relative to it, so paired.json does not name this machine's checkout."""
    path = path.resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def paired(run_dir: Path, original_dir: Path, name: str) -> dict[str, object]:
    """The run against the original checkpoint on the same points: the NLL difference ours − original."""
    _, _, ours = open_run(run_dir)
    theirs = load_original(original_dir)
    if not isinstance(ours, Flow) or not isinstance(theirs, Flow):
        raise SystemExit(f"{run_dir} and {original_dir} must both be 2-D flows")
    ours.eval(), theirs.eval()
    points = torch.cat([torch.from_numpy(sample_toy(name, POINTS, seed)) for seed in POINT_SEEDS])
    ours_nll, original_nll = nll(ours, points), nll(theirs, points)
    difference = ours_nll - original_nll
    return {
        "ours_nll_nats": ours_nll.mean().item(),
        "original_nll_nats": original_nll.mean().item(),
        "difference_nats": difference.mean().item(),  # ours - original, per point
        "difference_stderr_nats": difference.std().item() / math.sqrt(len(difference)),
        "points": len(difference),
        "point_seeds": list(POINT_SEEDS),
        "original": str(repo_relative(original_dir)),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/flow2d_long")
    args.add_argument("--sets", nargs="+", default=["twomoon", "8gaussians"], choices=list(LONG), help="data sets")
    args.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (0)")
    args.add_argument(
        "--original", action="append", default=[], metavar="SET=DIR", help="an original checkpoint not shipped"
    )
    options = args.parse_args()
    originals = {name: ROOT / "data" / "original" / name for name in LONG}
    originals.update(dict(item.split("=", 1) for item in options.original))
    jobs = [
        (
            CONFIGS / "flow2d" / f"{name}.yaml",
            [*LONG[name], *options.overrides, f"seed={seed}"],
            options.out / name / f"seed{seed}",
        )
        for name in options.sets
        for seed in options.seeds
    ]
    print(run_jobs(jobs, options.out))
    for _, _, run_dir in jobs:
        name = run_dir.parent.name
        if not Path(originals[name], "model.pth").is_file():
            print(f"{run_dir}: no original checkpoint for {name} (--original {name}=DIR); not paired")
            continue
        result = paired(run_dir, Path(originals[name]), name)
        (run_dir / PAIRED).write_text(json.dumps(result, indent=1) + "\n")
        print(
            f"{run_dir}: ours - original {result['difference_nats']:+.4f} ± {result['difference_stderr_nats']:.4f} nats"
        )


if __name__ == "__main__":
    main()
