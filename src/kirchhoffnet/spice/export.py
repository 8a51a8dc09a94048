"""Writing a model's netlists to files, one per time slice, ready to run in any SPICE."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet.circuit import Circuit
from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.solve import trajectory
from kirchhoffnet.spice.deck import Deck, parameterised_deck
from kirchhoffnet.spice.dialect import Dialect, dialect
from kirchhoffnet.spice.netlist import (
    Realisation,
    SpiceOptions,
    as_circuit,
    encoding_note,
    slice_durations,
    slice_netlist,
)
from kirchhoffnet.spice.network_deck import network_deck, readout_nodes
from kirchhoffnet.spice.verify import REFERENCE_SOLVER


def netlist_paths(path: str | os.PathLike[str], slices: int, suffix: str = ".cir") -> list[Path]:
    """``path`` itself for one slice; ``<stem>.slice<k><suffix>`` for each of several."""
    target = Path(path)
    if slices == 1:
        return [target]
    return [target.with_name(f"{target.stem}.slice{k}{target.suffix or suffix}") for k in range(slices)]


def _handover(model: Any, x: Tensor) -> tuple[Circuit, list[Tensor], list[str]]:
    """The float64 circuit, each slice's (K, N) initial voltages and each deck's title.

    Slice 0 starts from the inputs; a later slice from the state kirchhoffnet hands over (its float64
    solve at [`REFERENCE_SOLVER`][kirchhoffnet.spice.REFERENCE_SOLVER]), since a stand-alone deck cannot
    read another run's result; `kirchhoffnet.spice.verify` hands over ngspice's own state instead.
    """
    circuit = copy.deepcopy(as_circuit(model)).to(torch.float64)
    inputs = x.detach().to(torch.float64).cpu()
    with torch.no_grad():
        waves, _ = trajectory(circuit, inputs, solver=REFERENCE_SOLVER, points_per_slice=2)
    titles = []
    for k in range(circuit.num_slices):
        source = "the inputs" if k == 0 else f"kirchhoffnet's state at the end of slice {k - 1}"
        titles.append(
            f"kirchhoffnet slice {k} of {circuit.num_slices} (t = {circuit.times[k]:g}..{circuit.times[k + 1]:g} s), "
            f"{len(inputs)} sample(s); initial voltages from {source}{encoding_note(circuit)}"
        )
    return circuit, [waves[k][1][0] for k in range(circuit.num_slices)], titles


def export_netlists(
    model: Any,
    x: Tensor,
    path: str | os.PathLike[str],
    options: SpiceOptions | None = None,
    realisation: Realisation | None = None,
) -> list[Path]:
    """Write the single-file ngspice netlist of every slice of ``model`` for inputs ``x`` (replicated per sample).

    Each file says in its title where its initial voltages come from (see `_handover`).

    Args:
        model: a Circuit, Flow or Network.
        x: (K, d) inputs.
        path: the netlist file (one slice) or the pattern of the per-slice files (see `netlist_paths`).
        options: ngspice settings written into each deck.
        realisation: how edges become elements; default behavioural current sources.

    Returns:
        The files written, in slice order.
    """
    circuit, starts, titles = _handover(model, x)
    options = options or SpiceOptions()
    paths = netlist_paths(path, circuit.num_slices)
    durations = slice_durations(circuit)
    for k, target in enumerate(paths):
        deck = slice_netlist(circuit.slice(k), starts[k], durations[k], options, titles[k], realisation)
        write_text_atomic(target, deck)
    return paths


def export_decks(
    model: Any,
    x: Tensor,
    path: str | os.PathLike[str],
    simulator: str | Dialect = "ngspice",
    options: SpiceOptions | None = None,
) -> list[Path]:
    """Write the parameterised deck of every slice in ``simulator``'s dialect (see `kirchhoffnet.spice.deck`).

    Each slice's main deck ``<stem><suffix>`` comes with ``<stem>.params<inc>`` (the learned values)
    and ``<stem>.ic<inc>`` (the samples' initial voltages) beside it.

    Args:
        model: a Circuit, Flow or Network.
        x: (K, d) inputs.
        path: the main deck (one slice) or the pattern of the per-slice decks (see `netlist_paths`).
        simulator: ``ngspice``, ``xyce``, ``ltspice`` or ``spectre``.
        options: transient settings written into each deck.

    Returns:
        The files written: main deck, parameters, initial conditions, slice after slice.
    """
    spelling = dialect(simulator)
    circuit, starts, titles = _handover(model, x)
    options = options or SpiceOptions()
    durations = slice_durations(circuit)
    spec = circuit.spec()
    layout: dict[str, Any] = {key: spec[key] for key in ("fill", "residual", "input_nodes", "encoding") if key in spec}
    written: list[Path] = []
    for k, target in enumerate(netlist_paths(path, circuit.num_slices, spelling.suffix)):
        params, ics = _include_files(target, spelling)
        record = {"slice": k, "slices": circuit.num_slices, "times_s": list(circuit.times[k : k + 2]), **layout}
        deck = parameterised_deck(
            circuit.slice(k),
            starts[k],
            durations[k],
            options,
            spelling,
            title=titles[k],
            files=(params.name, ics.name),
            circuit=record,
        )
        written += _write_deck(deck, (target, params, ics))
    return written


def export_network_deck(
    model: Any,
    x: Tensor,
    path: str | os.PathLike[str],
    *,
    options: SpiceOptions | None = None,
    simulator: str | Dialect = "ngspice",
) -> list[Path]:
    """Write the whole multi-slice network as one parameterised transient deck (see
    `kirchhoffnet.spice.network_deck`): from the inputs alone, a simulator reproduces the network's output.

    The main deck ``path`` comes with ``<stem>.params<inc>`` and ``<stem>.ic<inc>`` beside it; it measures
    the readout's nodes at the last time as ``out<i>`` (``out<i>_<sample>`` for several samples).

    Args:
        model: a Circuit, Flow or Network.
        x: (K, d) inputs.
        path: the main deck.
        options: transient settings; every slice gets steps at least as fine as in its own deck.
        simulator: ``ngspice`` or ``ltspice`` (name or [`Dialect`][kirchhoffnet.spice.Dialect]); the others' PWL and
            measurement statements are not written yet.

    Returns:
        The files written: main deck, parameters, initial conditions.
    """
    spelling = dialect(simulator)
    circuit = copy.deepcopy(as_circuit(model)).to(torch.float64)
    inputs = x.detach().to(torch.float64).cpu()
    start = circuit.input_state(inputs).T.numpy()
    target = Path(path)
    params, ics = _include_files(target, spelling)
    title = (
        f"kirchhoffnet network of {circuit.num_slices} slice(s) (t = {circuit.times[0]:g}..{circuit.times[-1]:g} s) "
        f"in one deck, {len(inputs)} sample(s); initial voltages from the inputs{encoding_note(circuit)}"
    )
    deck = network_deck(
        circuit,
        start,
        options or SpiceOptions(),
        spelling,
        outputs=readout_nodes(model, circuit.widths[-1]),
        title=title,
        files=(params.name, ics.name),
    )
    return _write_deck(deck, (target, params, ics))


def _include_files(target: Path, spelling: Dialect) -> tuple[Path, Path]:
    """The parameter and initial-condition files beside the main deck ``target``."""
    params, ics = (target.with_name(f"{target.stem}.{part}{spelling.include_suffix}") for part in ("params", "ic"))
    return params, ics


def _write_deck(deck: Deck, files: tuple[Path, Path, Path]) -> list[Path]:
    """Write the main deck, parameter and initial-condition texts to ``files``, in that order."""
    for file, text in zip(files, (deck.main, deck.parameters, deck.initial_conditions), strict=True):
        write_text_atomic(file, text)
    return list(files)
