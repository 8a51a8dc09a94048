"""Fashion-MNIST accuracy of a KirchhoffNet classifier (mix_connect topology, logits on 10 nodes), or of the
ODE-Net baseline of its size.

    python experiments/fashion_mnist.py              # the small 7x7 circuit: minutes on a CPU
    python experiments/fashion_mnist.py --full       # the original MNIST circuit at 28x28: hours per epoch on a CPU
    python experiments/fashion_mnist.py --odenet     # the ODE-Net baseline of the same size (with --full: 28x28)
    python experiments/fashion_mnist.py --paper --seeds 0 1 2 --out runs/seeds/fashion_mnist_paper

--paper trains the original MNIST circuit on a CPU budget (RECIPE: 10 epochs on a fixed RK4 step, about 50 CPU
minutes each) and then scores every run under dopri5 as well (RUN/eval), the adaptive solve that follows the
circuit's ODE to its tolerance: the fixed step is how it was trained, the ODE is what a chip computes.
Writes the run directories (DIR/NAME/seedS) under --out and report.md / report.json there.
"""

from __future__ import annotations

from common import CONFIGS, parser, run_jobs
from kirchhoffnet.training import evaluate_run

RECIPE = [
    "train.epochs=10",
    "train.batch_size=256",
    "train.lr=2e-3",
    "train.schedule={name: cosine}",
    "solver.method=rk4",
    "solver.step_size=0.5",
    "solver.gradient=backprop",
]
ADAPTIVE = ["solver.method=dopri5"]  # at the config's tolerances, 1e-3 (the original's)


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/fashion_mnist")
    args.add_argument("--full", action="store_true", help="train the full-size circuit instead of the small one")
    args.add_argument("--odenet", action="store_true", help="train the ODE-Net baseline of that size instead")
    args.add_argument("--paper", action="store_true", help="the full-size circuit on the CPU budget RECIPE")
    args.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (0)")
    options = args.parse_args()
    full = options.full or options.paper
    name = "fashion_mnist" + ("_odenet" if options.odenet else "") + ("" if full else "_small")
    overrides = (RECIPE if options.paper else []) + options.overrides
    out = options.out / name
    config = CONFIGS / "classify" / f"{name}.yaml"
    jobs = [(config, [*overrides, f"seed={seed}"], out / f"seed{seed}") for seed in options.seeds]
    print(run_jobs(jobs, options.out))
    if options.paper:
        for *_, run_dir in jobs:
            accuracy = evaluate_run(run_dir, run_dir / "eval", overrides=ADAPTIVE)["accuracy"]
            print(f"{run_dir}: test accuracy under dopri5 {100 * accuracy:.2f} %")


if __name__ == "__main__":
    main()
