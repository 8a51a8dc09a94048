"""Before/after at transistor level: a network trained on the ideal MOS law (MosRelu) and the same
circuit trained on the BSIM4 45 nm transistor's tabulated I-V (TransistorTable), both then simulated
whole in ngspice with BSIM4 transistors (`kirchhoffnet spice verify RUN --metric --transistors`).

``--task twomoon`` (default) trains configs/flow2d/twomoon_mosrelu.yaml and twomoon_bsim4.yaml, ``--task
fashion_mnist`` configs/classify/fashion_mnist_mosrelu.yaml and fashion_mnist_bsim4.yaml, into ``--out`` (a
finished run is kept, an interrupted one resumed), runs both through ngspice on ``--samples`` inputs (base
points, or test images) and prints a Markdown table: error per slice as % of the node-voltage swing, the task's
figures both sides (a flow's sample distance and energy distance; a classifier's accuracy and class agreement),
ngspice's node range against the rails, supply energy, and with ``--nll-points N`` the NLL of N held-out data
points from ngspice beside kirchhoffnet's. ``--only NAME`` runs one of the two. The JSON reports go next to the
runs.

Usage:
    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/transistor_study.py --out runs/transistor-study --samples 16 \
        --nll-points 64
    PYTHONPATH=src OMP_NUM_THREADS=1 python experiments/transistor_study.py --task fashion_mnist \
        --out runs/transistor-study-fmnist --samples 500 --jobs 2
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import CONFIGS, parser, train_unless_finished
from kirchhoffnet.errors import ToolError
from kirchhoffnet.spice import SpiceOptions, load_card
from kirchhoffnet.spice.mos import MosTechnology, TransistorRelu, table_transistors
from kirchhoffnet.training.hw import open_saved
from kirchhoffnet.training.spice_metric import spice_metric

CARD = "bsim4_45nm"
BEFORE, AFTER = "before: ideal law (MosRelu)", "after: BSIM4 table (TransistorTable)"
# task: (config folder, (label, config name) twice, rails in V or None for the card's 0 V to supply)
STUDIES: dict[str, tuple[str, tuple[tuple[str, str], ...], tuple[float, float] | None]] = {
    "twomoon": ("flow2d", ((BEFORE, "twomoon_mosrelu"), (AFTER, "twomoon_bsim4")), None),
    "fashion_mnist": ("classify", ((BEFORE, "fashion_mnist_mosrelu"), (AFTER, "fashion_mnist_bsim4")), (0.05, 0.95)),
}
FAST = SpiceOptions(reltol=1e-6, max_step_fraction=2e-2, points=21)  # the tests' settings; see docs/spice.md


def realisation(run_dir: Path) -> Any:
    """BSIM4 transistors for either model: the table's own card, or the card fitted to MosRelu's law."""
    model = open_saved(run_dir).model
    card = load_card(CARD)
    return table_transistors(model, CARD) or TransistorRelu(MosTechnology(card.text, card.model_name))


def row(label: str, report: dict[str, Any]) -> str:
    errors = " / ".join(f"{s['error_percent_of_swing']:.3g}" for s in report["slices"])
    rails = report["rails_v"]
    return (
        f"| {label} | {errors} | {report['max_abs_error_v']:.3g} | {task_cells(report)} | "
        f"{report['ngspice_min_v']:.3g} … {report['ngspice_max_v']:.3g} (rails {rails[0]:g}–{rails[1]:g}: "
        f"{'within' if report['within_rails'] else 'outside'}) | {report['supply_energy_j_per_input']:.3g} |"
        f"{nll_cells(report.get('nll'))}"
    )


def task_cells(report: dict[str, Any]) -> str:
    """A flow's sample distance and energy distances, or a classifier's accuracy both sides and class agreement."""
    if report["metric"] == "accuracy":
        return (
            f"{100 * report['ngspice']:.2f} / {100 * report['kirchhoffnet']:.2f} ({report['samples']} test images) | "
            f"{100 * report['class_agreement']:.2f}"
        )
    return (
        f"{report['max_sample_distance']:.3g} | {report.get('energy_distance_ngspice', float('nan')):.4g} / "
        f"{report.get('energy_distance_kirchhoffnet', float('nan')):.4g}"
    )


def nll_cells(nll: dict[str, Any] | None) -> str:
    """The NLL columns: ngspice / kirchhoffnet on the same points, and the residual |F(z) − x| in ngspice."""
    if nll is None:
        return ""
    return (
        f" {nll['nll_ngspice']:.5g} / {nll['nll_kirchhoffnet']:.5g} ({nll['points']} points, "
        f"{nll['newton_steps']} Newton steps) | {nll['max_residual_v']:.2g} |"
    )


def main() -> None:
    args = parser(__doc__.splitlines()[0], "runs/transistor-study")
    args.add_argument("--samples", type=int, default=16, help="base points or test images simulated in ngspice (16)")
    args.add_argument("--jobs", type=int, default=1, help="ngspice processes at once (1)")
    args.add_argument("--nll-points", type=int, default=0, help="held-out points scored by NLL from ngspice (0)")
    args.add_argument("--newton-steps", type=int, default=0, help="Newton steps on ngspice's map per point (0)")
    args.add_argument("--task", choices=list(STUDIES), default="twomoon", help="which pair of twins (twomoon)")
    args.add_argument("--only", help="run one of the two configs by name (default both)")
    opts = args.parse_args()
    folder, study, task_rails = STUDIES[opts.task]
    if opts.only not in (None, *(name for _, name in study)):
        args.error(f"--only {opts.only}: {opts.task}'s configs are {' and '.join(name for _, name in study)}")
    rails = task_rails or (0.0, load_card(CARD).supply_v or 1.0)  # the shipped card states its supply
    task_header = (
        "accuracy from ngspice / kirchhoffnet (%) | classes agree (%)"
        if opts.task == "fashion_mnist"
        else "max sample distance | energy distance ngspice / kirchhoffnet"
    )
    nll_header = " NLL from ngspice / kirchhoffnet | residual \\|F(z) − x\\| (V) |" if opts.nll_points else ""
    lines = [
        f"| run | error per slice, % of swing | max \\|Δv\\| (V) | {task_header} | ngspice node range (V) | "
        f"supply energy (J/input) |{nll_header}",
        "| --- " * (9 if opts.nll_points else 7) + "|",
    ]
    for label, name in study:
        if opts.only not in (None, name):
            continue
        run_dir = opts.out / name
        train_unless_finished(CONFIGS / folder / f"{name}.yaml", opts.overrides, run_dir)
        test = json.loads((run_dir / "metrics.json").read_text())["test"]
        trained = (
            f"test accuracy {100 * test['accuracy']:.2f} %"
            if "accuracy" in test
            else f"held-out NLL {test['nll_nats']:.3f}"
        )
        try:
            report, _ = spice_metric(
                run_dir, opts.samples, options=FAST, realisation=realisation(run_dir), rails=rails, jobs=opts.jobs,
                nll_points=opts.nll_points, newton_steps=opts.newton_steps,
            )  # fmt: skip
        except ToolError as exc:  # a network the card cannot build (an ideal-law gain needing a too-narrow channel)
            report = {"ngspice_error": str(exc)}
            lines.append(f"| {label}, {trained} | ngspice refused it: {exc} |")
        else:
            lines.append(row(f"{label}, {trained}", report))
        (opts.out / f"{name}_spice.json").write_text(json.dumps(report, indent=1, default=str))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
