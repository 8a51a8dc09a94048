"""``kirchhoffnet diffusion``: sample, evaluate and export trained diffusion runs (training is
``kirchhoffnet train`` with a diffusion config, like every task)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer

from kirchhoffnet._finite import SEED_MAX
from kirchhoffnet.cli._common import fail, status
from kirchhoffnet.errors import KirchhoffError, shown

app = typer.Typer(
    help="Sample, evaluate and export score-based diffusion runs: the simulated analog RRAM in-memory solver (Yang "
    "et al., arXiv 2404.05648) and the KirchhoffNet score circuit. Train with `kirchhoffnet train "
    "configs/diffusion/*.yaml`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

RunDir = Annotated[
    Path,
    typer.Argument(help="A run directory of a diffusion config (`kirchhoffnet train configs/diffusion/ring.yaml`)."),
]


def _print_result(summary: Any, written: object) -> None:
    """Print the command's summary as one JSON line, then what it wrote."""
    typer.echo(json.dumps(summary))
    status(f"wrote {written}")


def _check_request(config: Any, n: int, steps: int | None, guidance: float | None, option: str = "-n") -> None:
    """The run's pre-flight with this command's sample count (given by ``option``) and steps, and a finite
    guidance."""
    from kirchhoffnet._finite import finite_number
    from kirchhoffnet.config.budget import check_diffusion
    from kirchhoffnet.errors import ConfigError
    from kirchhoffnet.solve.solver import MAX_FIXED_STEPS

    if guidance is not None:
        finite_number("--guidance", guidance)
        if not config.num_classes:  # as labels are refused for it: a setting that would change nothing
            raise ConfigError("--guidance: this model is unconditional; guidance applies to class-conditional models")
    if steps is not None and steps > MAX_FIXED_STEPS:
        raise ConfigError(f"--steps: {steps:.3g} solver steps is more than the limit of {MAX_FIXED_STEPS:.0e}")
    try:
        check_diffusion(config.model_copy(update={"evaluate": config.evaluate.model_copy(update={"num_samples": n})}))
    except ConfigError as exc:
        raise ConfigError(f"{option} {n}: {exc}") from None


@app.command("sample")
def sample_command(
    run_dir: RunDir,
    n: Annotated[int, typer.Option("-n", min=1, help="Number of samples.")] = 10_000,
    solver: Annotated[
        str,
        typer.Option(
            help="euler (digital reverse SDE), pf-ode (probability-flow ODE: digital, or a score circuit's "
            "transient), analog (RRAM loop, reverse SDE), analog-ode (RRAM loop, probability-flow ODE), or "
            "EQUATION/INTEGRATOR (reverse-sde|pf-ode / euler|transient|analog, e.g. pf-ode/euler)."
        ),
    ] = "analog",
    prog_noise: Annotated[
        float | None, typer.Option(min=0.0, help="Programming noise σ of the chip (relative); default: the config's.")
    ] = None,
    chip: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help="Chip seed: the same seed is the same programmed chip.")
    ] = 0,
    verify_tolerance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Program with write-verify: rewrite each cell until it is within ± this fraction of its target.",
        ),
    ] = None,
    read_noise: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Read noise of the chip: relative σ of each crossbar read (0.05 = 5 %), analog solvers; "
            "default: the config's rram.read_noise.",
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Solver steps; default: the config's.")] = None,
    label: Annotated[int | None, typer.Option(help="Conditional models: class index to generate.")] = None,
    guidance: Annotated[
        float | None, typer.Option(help="Classifier-free guidance strength; default: config's.")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=SEED_MAX, help="Seed of the initial noise and the injected noise.")
    ] = 0,
    out: Annotated[Path, typer.Option(help="Output .npy file: an (N, 2) float32 array.")] = Path("samples.npy"),
) -> None:
    """Draw samples from a trained model with a digital or simulated analog solver."""
    import torch

    from kirchhoffnet.diffusion.run import load_run
    from kirchhoffnet.diffusion.sampling import sample_run
    from kirchhoffnet.io import save_npy_atomic
    from kirchhoffnet.io.paths import check_out_file

    try:
        check_out_file(out)
        run = load_run(run_dir)
        _check_request(run.config, n, steps, guidance)
        labels = None if label is None else torch.tensor([label])
        x, info = sample_run(
            run,
            n,
            solver,
            prog_noise,
            seed,
            chip,
            steps,
            labels,
            guidance,
            verify_tolerance=verify_tolerance,
            read_noise=read_noise,
            progress=True,
        )
        array = x.numpy().astype(np.float32)
        save_npy_atomic(out, array)
    except KirchhoffError as exc:
        fail(exc)
    _print_result(info, f"{out} {array.shape}")


@app.command("evaluate")
def evaluate_command(
    run_dir: RunDir,
    robustness_only: Annotated[
        bool, typer.Option(help="Ring runs: only recompute the KL-vs-programming-noise curves (keeps the rest).")
    ] = False,
    verify_tolerance: Annotated[
        float | None,
        typer.Option(min=0.0, help="Also draw the curve with write-verified programming at this relative tolerance."),
    ] = None,
    read_noise: Annotated[
        float | None,
        typer.Option(min=0.0, help="Evaluate with this read noise on every chip (0.05 = 5 %); default: the config's."),
    ] = None,
) -> None:
    """KL of every solver, KL vs programming noise over several chips, speed/energy report and plots."""
    from kirchhoffnet.diffusion.evaluate import evaluate
    from kirchhoffnet.diffusion.run import RUN_METRICS

    try:
        metrics = evaluate(
            run_dir,
            progress=True,
            robustness_only=robustness_only,
            verify_tolerance=verify_tolerance,
            read_noise=read_noise,
        )
    except KirchhoffError as exc:
        fail(exc)
    key = "accuracy" if metrics["data"] == "latent" else "kl_pooled"
    summary = {k: v[key] for k, v in metrics.items() if isinstance(v, dict) and key in v}
    _print_result(summary, run_dir / RUN_METRICS)


@app.command("compare")
def compare_command(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Evaluated ring run directories (e.g. plain and noise-aware).")
    ],
    out: Annotated[Path, typer.Option(help="Figure to write.")] = Path("robustness.png"),
) -> None:
    """Plot the KL-vs-programming-noise curves of several evaluated runs together; prints the mean KLs."""
    from kirchhoffnet.diffusion.evaluate import compare_robustness
    from kirchhoffnet.io.figures import check_figure_file

    try:
        check_figure_file(out)
        table = compare_robustness(run_dirs, out)
    except KirchhoffError as exc:
        fail(exc)
    _print_result(table, out)


@app.command("speed-energy")
def speed_energy_command(
    run_dir: RunDir,
    batch: Annotated[int, typer.Option(min=1, help="Trajectories of the batched digital run that is timed.")] = 10_000,
    solver: Annotated[
        str, typer.Option(help="analog (reverse SDE, against digital euler) or analog-ode (against digital pf-ode).")
    ] = "analog",
    assume: Annotated[
        list[str] | None,
        typer.Option(help="Override an assumption, NAME=VALUE (e.g. digital_power_w=300, drive_hold_s=0); repeatable."),
    ] = None,
) -> None:
    """Time the digital sampler (one trajectory alone, and a batch), simulate the loop's crossbar power, and print
    the itemised analog/digital latency and energy per sample; writes speed_energy.txt and speed_energy.json into
    the run. Conditional runs generate their classes in turn with the config's guidance."""
    from kirchhoffnet.diffusion.run import load_run
    from kirchhoffnet.diffusion.sampling import speed_energy
    from kirchhoffnet.errors import ConfigError
    from kirchhoffnet.rram.energy import format_report

    try:
        overrides = {}
        for item in assume or []:
            name, sep, value = item.partition("=")
            try:
                overrides[name.strip()] = float(value) if sep else float("nan")
            except ValueError:
                sep = ""
            if not sep:
                raise ConfigError(f"--assume takes NAME=VALUE with a number, got {shown(item)}")
        run = load_run(run_dir)
        _check_request(run.config, batch, None, None, option="--batch")
        report = speed_energy(run, batch=batch, assumptions=overrides, solver=solver)
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(format_report(report))
    status(f"wrote {run_dir / 'speed_energy.json'}")


@app.command("spice")
def spice_command(
    run_dir: RunDir,
    samples: Annotated[int, typer.Option(min=1, help="Generation transients (one netlist replica each).")] = 4,
    hidden_capacitance: Annotated[
        float | None,
        typer.Option(
            min=1e-6,
            help="C_h of the hidden nodes (normalised; C_x = 1 / the sampling β scale); default: evaluate's C_h.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX, help="Seed of the base samples x₀ ~ N(0, I).")] = 0,
    guidance: Annotated[
        float | None,
        typer.Option(help="Conditional circuits: classifier-free guidance w (two circuit copies); default: config's."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the deck and the JSON (default RUN_DIR/spice).")] = None,
) -> None:
    """KirchhoffNet score circuits: the generation transient as a SPICE deck, simulated in ngspice and
    compared node by node with our own integration of the same circuit. A conditional circuit generates its
    classes in turn (sample k: class k mod classes)."""
    from kirchhoffnet.diffusion.circuit_spice import verify_score_circuit
    from kirchhoffnet.diffusion.run import load_run
    from kirchhoffnet.diffusion.score_circuit.model import CircuitScoreModel
    from kirchhoffnet.diffusion.score_circuit.sample import HIDDEN_CAPACITANCE
    from kirchhoffnet.errors import ConfigError
    from kirchhoffnet.io import write_json_atomic, write_text_atomic
    from kirchhoffnet.io.paths import check_out_dir, prepare_out_dir

    folder = out or run_dir / "spice"
    try:
        check_out_dir(folder)
        run = load_run(run_dir)
        _check_request(run.config, samples, None, guidance, option="--samples")
        if "transient" not in run.model.integrators:
            raise ConfigError(
                f"{run_dir} holds a crossbar score model; `diffusion spice` exports KirchhoffNet score circuits "
                "(train with model.kind: kirchhoffnet)"
            )
        circuit = cast(CircuitScoreModel, run.model)  # a field with a transient is a score circuit
        model = circuit.sharpened(run.config.sample.ode_beta_scale)  # the sampler the run uses
        capacitance = HIDDEN_CAPACITANCE if hidden_capacitance is None else hidden_capacitance
        w = run.config.sample.guidance if guidance is None else guidance
        check, deck = verify_score_circuit(
            model, samples, capacitance, seed=seed, guidance=w if model.num_classes else 0.0
        )
        prepare_out_dir(folder)
        write_text_atomic(folder / "score_circuit.cir", deck)
        write_json_atomic(folder / "spice_check.json", check.to_dict())
    except KirchhoffError as exc:
        fail(exc)
    _print_result(check.to_dict(), folder)
