"""Fashion-MNIST accuracy of a KirchhoffNet classifier (mix_connect topology, logits on 10 nodes), or of the
ODE-Net baseline of its size.

    python experiments/fashion_mnist.py              # the small 7x7 circuit: minutes on a CPU
    python experiments/fashion_mnist.py --full       # the original MNIST circuit at 28x28: hours per epoch on a CPU
    python experiments/fashion_mnist.py --odenet     # the ODE-Net baseline of the same size (with --full: 28x28)

Writes the run directory under --out and report.md / report.json there.
"""

from __future__ import annotations

from common import CONFIGS, parser, run_jobs


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/fashion_mnist")
    args.add_argument("--full", action="store_true", help="train the full-size circuit instead of the small one")
    args.add_argument("--odenet", action="store_true", help="train the ODE-Net baseline of that size instead")
    options = args.parse_args()
    name = "fashion_mnist" + ("_odenet" if options.odenet else "") + ("" if options.full else "_small")
    jobs = [(CONFIGS / "classify" / f"{name}.yaml", options.overrides, options.out / name)]
    print(run_jobs(jobs, options.out))


if __name__ == "__main__":
    main()
