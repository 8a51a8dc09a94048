"""``kirchhoffnet spice``: export trained circuits to SPICE netlists and verify them against ngspice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from kirchhoffnet.cli._common import fail, status
from kirchhoffnet.errors import KirchhoffError

app = typer.Typer(
    help="Export circuits to SPICE netlists and check them against ngspice (apt-get install -y ngspice).",
    no_args_is_help=True,
)

ModelPath = Annotated[
    Path,
    typer.Argument(
        help="A .safetensors checkpoint, a run directory with model.safetensors, or an original result directory."
    ),
]
Samples = Annotated[int, typer.Option(min=1, help="Input samples (standard normal: a flow's base samples).")]
Seed = Annotated[int, typer.Option(help="Seed of the input samples.")]
Reltol = Annotated[float, typer.Option(help="ngspice reltol (relative tolerance; its default is 1e-3).")]
MaxStep = Annotated[float, typer.Option(help="Largest ngspice time step, as a fraction of a slice's duration.")]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the figures as JSON here.")]
PlotOut = Annotated[Path | None, typer.Option(help="Write a PNG figure here.")]
Transistors = Annotated[
    bool, typer.Option(help="Build MosRelu edges from NMOS transistors instead of behavioural current sources.")
]
ModelCard = Annotated[
    Path | None,
    typer.Option(
        help="File with the NMOS .model card for transistors (default: level 1, VTO 0.5 V, KP 100 µA/V²); for a "
        "TransistorTable model also a shipped card's name (default: the card it was tabulated from)."
    ),
]
ModelName = Annotated[str, typer.Option(help="Name of the NMOS model in --model-card.")]
Parasitics = Annotated[
    bool,
    typer.Option(
        help="With --transistors on a TransistorTable model: add each edge transistor's gate and drain capacitances "
        "(ngspice AC at its operating point) to the nodes it touches, in both simulators; the JSON gains the "
        "slowdown and how far the outputs move. Needs --time-unit."
    ),
]
TimeUnit = Annotated[
    float | None,
    typer.Option(help="With --parasitics: seconds per unit of circuit time (1e-9: a slice of length 1 runs 1 ns)."),
]
NllPoints = Annotated[
    int,
    typer.Option(
        help="With --metric, for a flow: also its NLL on this many held-out data points from ngspice's forward map "
        "(each point and 4·d perturbed copies in one netlist), beside kirchhoffnet's, under 'nll'."
    ),
]
NewtonSteps = Annotated[
    int, typer.Option(help="With --nll-points: Newton steps on ngspice's map from kirchhoffnet's base point.")
]


def _options(reltol: float, max_step: float, **extra: Any) -> Any:
    from kirchhoffnet.spice import SpiceOptions

    return SpiceOptions(reltol=reltol, max_step_fraction=max_step, **extra)


def _technology(model_card: Path | None, model_name: str) -> Any:
    from kirchhoffnet._textfile import read_text
    from kirchhoffnet.errors import ConfigError
    from kirchhoffnet.spice.mos import MosTechnology

    if model_card is None:
        return MosTechnology()
    if not model_card.is_file():
        raise ConfigError(f"cannot read --model-card {model_card}: no such file")
    card = read_text(model_card, error=ConfigError, label="--model-card file")  # bounded, UTF-8 or one line
    return MosTechnology(model_card=card.strip(), model_name=model_name)


def _realisation(model: Any, transistors: bool, model_card: Path | None, model_name: str) -> Any:
    """Transistor edges for a MosRelu model (``--model-card`` a file) or a TransistorTable model (the card it
    was tabulated from: ``--model-card`` a shipped name or file, by default the table's own)."""
    from kirchhoffnet.spice.mos import TransistorRelu, table_transistors

    if not transistors:
        return None
    return table_transistors(model, model_card) or TransistorRelu(_technology(model_card, model_name))


def _check_out_files(json_out: Path | None, plot: Path | None) -> None:
    from kirchhoffnet.io.figures import check_figure_file
    from kirchhoffnet.io.paths import check_out_file

    if json_out is not None:
        check_out_file(json_out, "--json")
    if plot is not None:
        check_figure_file(plot, "--plot")


def _wrote(*targets: Path | None) -> None:
    for target in targets:
        if target is not None:
            status(f"wrote {target}")


@app.command("export")
def export(
    path: ModelPath,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Netlist file (default net.cir, net.scs for Spectre); with several slices, "
            "<stem>.slice<k><suffix> files are written instead."
        ),
    ] = None,
    samples: Samples = 1,
    seed: Seed = 0,
    reltol: Reltol = 1e-8,
    max_step: MaxStep = 2e-3,
    transistors: Transistors = False,
    model_card: ModelCard = None,
    model_name: ModelName = "kn_nmos",
    dialect: Annotated[
        str, typer.Option(help="Simulator whose syntax is written: ngspice, xyce, ltspice or spectre.")
    ] = "ngspice",
    parameterised: Annotated[
        bool,
        typer.Option(
            help="One subcircuit per device family with the learned values in <stem>.params and the initial "
            "voltages in <stem>.ic include files (always so for dialects other than ngspice)."
        ),
    ] = False,
    whole_network: Annotated[
        bool,
        typer.Option(
            help="One deck for all slices (each slice's devices gated on in its time window) that reproduces the "
            "network's output from the inputs alone, read out as .meas out<i>; ngspice and ltspice."
        ),
    ] = False,
) -> None:
    """Write the model's SPICE netlist: node capacitors with initial voltages, a current source per edge."""
    from kirchhoffnet.errors import ConfigError
    from kirchhoffnet.io.paths import check_out_file
    from kirchhoffnet.runs import load_model
    from kirchhoffnet.spice import random_inputs
    from kirchhoffnet.spice.dialect import dialect as spelling
    from kirchhoffnet.spice.export import export_decks, export_netlists, export_network_deck

    try:
        chosen = spelling(dialect)
        target = out or Path(f"net{chosen.suffix}")
        check_out_file(target)
        decks = parameterised or chosen.name != "ngspice"
        if (decks or whole_network) and transistors:
            raise ConfigError(
                "--transistors writes single-file ngspice netlists; drop --parameterised, --dialect and --whole-network"
            )
        model = load_model(path)
        realisation = _realisation(model, transistors, model_card, model_name)
        inputs = random_inputs(model, samples, seed)
        options = _options(reltol, max_step)
        if whole_network:
            written = export_network_deck(model, inputs, target, simulator=chosen, options=options)
        elif decks:
            written = export_decks(model, inputs, target, chosen, options)
        else:
            written = export_netlists(model, inputs, target, options, realisation)
    except KirchhoffError as exc:
        fail(exc)
    _wrote(*written)
    if chosen.name == "ngspice":  # ngspice measures only without a raw file
        status(
            f"run with: ngspice -b {written[0]}" if whole_network else f"run with: ngspice -b -r out.raw {written[0]}"
        )


@app.command("import")
def import_(
    decks: Annotated[
        list[Path],
        typer.Argument(
            help="Parameterised ngspice deck(s) written by `spice export --parameterised`, slices in order."
        ),
    ],
    out: Annotated[Path, typer.Option(help="The circuit's .safetensors file.")] = Path("imported.safetensors"),
) -> None:
    """Read parameterised ngspice decks (possibly edited by hand) back into a circuit file that `kn.load` opens."""
    from kirchhoffnet.checkpoint import save
    from kirchhoffnet.io.paths import check_out_file
    from kirchhoffnet.spice.importer import import_deck

    try:
        check_out_file(out)
        circuit = import_deck(decks)
        save(circuit, out)
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(json.dumps({"slices": circuit.num_slices, "nodes": list(circuit.widths), "params": circuit.num_params}))
    _wrote(out)


@app.command("verify")
def verify(
    path: ModelPath,
    samples: Samples = 4,
    seed: Seed = 0,
    json_out: JsonOut = None,
    plot: PlotOut = None,
    max_error: Annotated[
        float, typer.Option(help="Exit with status 1 when the largest voltage difference exceeds this (V).")
    ] = 1e-3,
    reltol: Reltol = 1e-8,
    max_step: MaxStep = 2e-3,
    points: Annotated[int, typer.Option(min=2, help="Comparison points per slice.")] = 101,
    jobs: Annotated[int | None, typer.Option(min=1, help="ngspice processes at once (default: CPUs).")] = None,
    transistors: Transistors = False,
    model_card: ModelCard = None,
    model_name: ModelName = "kn_nmos",
    keep_raw: Annotated[
        Path | None,
        typer.Option(help="Keep ngspice's raw files here: slice<k>_samples<i>-<j>.raw (default: deleted)."),
    ] = None,
    metric: Annotated[
        bool,
        typer.Option(
            help="Run held-out inputs (a run's test set, a flow's base samples) through every slice in ngspice and "
            "print the task metric from ngspice's outputs beside kirchhoffnet's, as JSON."
        ),
    ] = False,
    rails: Annotated[
        tuple[float, float] | None,
        typer.Option(help="With --metric: supply rails LOW HIGH (V) every node must stay within in ngspice."),
    ] = None,
    parasitics: Parasitics = False,
    time_unit: TimeUnit = None,
    nll_points: NllPoints = 0,
    newton_steps: NewtonSteps = 0,
) -> None:
    """Simulate the model in ngspice and in kirchhoffnet on the same inputs and compare node voltages.

    The JSON holds max_abs_error_v, mean_abs_error_v, nodes, edges, ngspice_s and
    kirchhoffnet_s among others; the plot overlays both waveforms of the first sample.
    With --metric, stdout is the whole report: per-slice errors, node-voltage range and the metric both ways;
    with --nll-points a flow's NLL from ngspice too.
    """
    from kirchhoffnet._finite import finite_number
    from kirchhoffnet.errors import ConfigError
    from kirchhoffnet.io import write_json_atomic
    from kirchhoffnet.io.figures import save_figure
    from kirchhoffnet.io.paths import check_out_dir
    from kirchhoffnet.runs import load_model
    from kirchhoffnet.spice import load_parasitics, random_inputs
    from kirchhoffnet.spice import verify as run_verify
    from kirchhoffnet.training.spice_metric import spice_metric

    try:
        finite_number("--max-error", max_error, low=0.0, open_low=True)
        if rails is not None and not metric:
            raise ConfigError("--rails is checked on the --metric report; add --metric")
        if (nll_points or newton_steps) and not metric:
            raise ConfigError("--nll-points and --newton-steps are part of the --metric report; add --metric")
        if newton_steps and not nll_points:
            raise ConfigError("--newton-steps refines the points of --nll-points; add --nll-points N")
        for bound in rails or ():
            finite_number("--rails", bound)
        _check_out_files(json_out, plot)
        options = _options(reltol, max_step, points=points)
        realisation = _realisation(load_model(path) if transistors else None, transistors, model_card, model_name)
        if (parasitics or time_unit is not None) and not (parasitics and transistors and time_unit is not None):
            raise ConfigError("--parasitics needs --transistors and --time-unit, and --time-unit needs --parasitics")
        extra: dict[str, Any] = {}
        if keep_raw is not None and metric:
            raise ConfigError("--keep-raw keeps the files of a plain verify; drop it with --metric")
        if keep_raw is not None:
            check_out_dir(keep_raw, "--keep-raw")
        if metric:
            summary, report = spice_metric(
                path, samples, options=options, realisation=realisation, rails=rails, jobs=jobs, seed=seed,
                nll_points=nll_points, newton_steps=newton_steps, progress=True,
                parasitics=None if time_unit is None else (time_unit, model_card),
            )  # fmt: skip
            summary = {**summary, "source": str(path.resolve()), "seed": seed}
            if summary["samples"] < samples:
                status(
                    f"the test set holds {summary['samples']} inputs, fewer than --samples {samples}: scored them all"
                )
            if nll_points and summary["nll"]["points"] < nll_points:
                status(f"the test set holds {summary['nll']['points']} points, fewer than --nll-points {nll_points}")
        else:
            model = load_model(path)
            inputs = random_inputs(model, samples, seed)
            if parasitics and time_unit is not None:  # the nodes carry the edge transistors' capacitances
                model, figures = load_parasitics(model, inputs, time_unit, model_card)
                extra = {"parasitics": figures}
            report = run_verify(
                model, inputs, options=options, jobs=jobs, realisation=realisation, keep_raw=keep_raw, progress=True
            )
            figures = report.to_dict()
            summary = {k: figures[k] for k in ("max_abs_error_v", "mean_abs_error_v", "nodes", "edges", "samples")}
            summary |= {k: round(figures[k], 3) for k in ("ngspice_s", "kirchhoffnet_s")}
            summary |= extra
        if json_out is not None:
            whole = summary if metric else {**report.to_dict(), "source": str(path.resolve()), "seed": seed, **extra}
            write_json_atomic(json_out, whole)
        if plot is not None:
            save_figure(report.figure(), plot)
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(json.dumps(summary))
    _wrote(json_out, plot, keep_raw)
    if not report.max_abs_error_v <= max_error:  # a NaN error fails too
        remedy = (
            "the transistors depart from the MosRelu model; `kirchhoffnet spice iv` shows by how much"
            if transistors
            else "tighten --reltol or --max-step"
        )
        typer.echo(
            f"error: ngspice and kirchhoffnet differ by up to {report.max_abs_error_v:.3g} V, more than "
            f"--max-error {max_error:g} V; {remedy}",
            err=True,
        )
        raise typer.Exit(code=1)


@app.command("iv")
def iv(
    path: ModelPath,
    edges: Annotated[int, typer.Option(min=1, help="Check the first this many edges of each slice.")] = 16,
    drop: Annotated[float, typer.Option(min=0.0, help="Sweep v_src − v_dst from −DROP to +DROP volts.")] = 2.0,
    json_out: JsonOut = None,
    plot: PlotOut = None,
    model_card: ModelCard = None,
    model_name: ModelName = "kn_nmos",
) -> None:
    """DC-sweep a MosRelu model's edges built from transistors; report how far they depart from the ideal ReLU.

    Errors are in the simulator's normalised current units, against the ideal ReLU and against
    the MosRelu model; the JSON adds the ranges of the fitted W/L and gate biases.
    """
    from kirchhoffnet.io import write_json_atomic
    from kirchhoffnet.io.figures import save_figure
    from kirchhoffnet.runs import load_model
    from kirchhoffnet.spice.mos import model_iv_departure

    try:
        _check_out_files(json_out, plot)
        technology = _technology(model_card, model_name)
        report = model_iv_departure(load_model(path), technology, edges, (-drop, drop))
        if json_out is not None:
            write_json_atomic(json_out, {**report.to_dict(), "source": str(path.resolve())})
        if plot is not None:
            save_figure(report.figure(), plot)
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(json.dumps({k: v for k, v in report.to_dict().items() if k != "fit"}))
    _wrote(json_out, plot)


@app.command("tabulate")
def tabulate(
    model_card: Annotated[
        str, typer.Option(help="A shipped card's name (bsim4_45nm, bsim4_180nm, level1_180nm) or a card file.")
    ],
    model_name: Annotated[
        str | None, typer.Option(help="The model in the card (default: its first of --transistor's type).")
    ] = None,
    transistor: Annotated[
        str, typer.Option(help="nmos or pmos: which transistor of a shipped technology, or of the card file.")
    ] = "nmos",
    drain_voltage: Annotated[float, typer.Option(help="V_DS (a PMOS's V_SD) of every edge transistor (V).")] = 0.1,
    length: Annotated[float | None, typer.Option(help="Channel length in m (default: the card's, or 1e-6).")] = None,
    supply: Annotated[float | None, typer.Option(help="Supply voltage (default: the card's, or 1.8).")] = None,
    knots: Annotated[int, typer.Option(min=3, max=1000, help="Spline knots over V_GS in [0, 2·supply].")] = 65,
    json_out: JsonOut = None,
) -> None:
    """Fit a TransistorTable device to the card's NMOS or PMOS drain current (ngspice DC sweeps; cached on disk).

    Prints the fit report as JSON: errors against fresh sweeps at other gate voltages
    (fit_error_pct) and other widths (width_error_pct), in % of the current range.
    """
    from kirchhoffnet.io import write_json_atomic
    from kirchhoffnet.io.paths import check_out_file
    from kirchhoffnet.spice.model_cards import Transistor
    from kirchhoffnet.spice.tabulation import tabulate as run_tabulate

    try:
        if json_out is not None:
            check_out_file(json_out, "--json")
        result = run_tabulate(
            model_card, model_name=model_name, transistor=cast(Transistor, transistor),  # load_card checks it
            drain_voltage_v=drain_voltage, length_m=length, supply_v=supply, knots=knots,
        )  # fmt: skip
        if json_out is not None:
            write_json_atomic(json_out, {**result.report, "device": result.device.spec()})
    except KirchhoffError as exc:
        fail(exc)
    typer.echo(json.dumps(result.report))
    _wrote(json_out)


@app.command("veriloga")
def veriloga(
    path: ModelPath,
    out: Annotated[Path, typer.Option(help="Folder for one <family>.va file per device family.")] = Path("veriloga"),
) -> None:
    """Write each device family of the model as a Verilog-A module (I(p,n) <+ post*sigma(a*V(p)+b*V(n)+c))."""
    from kirchhoffnet.io.paths import check_out_dir
    from kirchhoffnet.runs import load_model
    from kirchhoffnet.spice.veriloga import export_veriloga

    try:
        check_out_dir(out)
        written = export_veriloga(load_model(path), out)
    except KirchhoffError as exc:
        fail(exc)
    _wrote(*written)
