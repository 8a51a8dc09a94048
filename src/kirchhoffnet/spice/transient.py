"""A whole circuit in ngspice: one transient run per slice, the state handed from one to the next.

Slice k's netlist starts from the voltages slice k−1 ended with, resized by the circuit's fill
rule and with the residual added, exactly as [`kirchhoffnet.simulate`][kirchhoffnet.solve.simulate.simulate] does
between slices. Samples are simulated in groups: each group is one netlist per slice holding one replica of the
slice per sample, and groups run as parallel ngspice processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet._progress import bar
from kirchhoffnet.errors import ConfigError, ToolError
from kirchhoffnet.spice._runner import run_ngspice
from kirchhoffnet.spice.netlist import (
    Realisation,
    SpiceOptions,
    as_circuit,
    encoding_note,
    node_columns,
    slice_durations,
    slice_netlist,
)

Wave = tuple[np.ndarray, np.ndarray]
"""``(t, v)``: times (T,) in s and node voltages (T, N) in V of one sample over one slice."""


@dataclass
class SpiceTrajectory:
    """Node voltages ngspice computed, per slice and sample.

    Attributes:
        waves: ``waves[k][s]`` is the `Wave` of sample s over slice k, times in the
            circuit's clock (slice k starts at ``circuit.times[k]``).
        final: (K, N) output voltages: the end of the last slice, plus the residual if it ends there.
        supply_energy_j: (K,) energy each sample drew from the supply sources over all slices (the trapezoidal
            integral of Σ V·I over ngspice's own time points), or ``None`` for a realisation without supplies.
        supply_peak_power_w: (K,) the largest total supply power of each sample, or ``None`` likewise.
        seconds: wall-clock time of all ngspice work (processes in parallel count once).
        runs: ngspice processes started.
    """

    waves: list[list[Wave]]
    final: np.ndarray
    seconds: float
    runs: int
    supply_energy_j: np.ndarray | None = None
    supply_peak_power_w: np.ndarray | None = None


def spice_trajectory(
    model: Any,
    x: Tensor,
    options: SpiceOptions | None = None,
    *,
    samples_per_netlist: int | None = None,
    jobs: int | None = None,
    realisation: Realisation | None = None,
    keep_raw: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> SpiceTrajectory:
    """Simulate a circuit (or a Flow's/Network's) with ngspice from inputs ``x``.

    Args:
        model: a Circuit, Flow or Network; flows run forward in time (base → data, sampling).
        x: (K, d) inputs, placed on the input nodes as [`kirchhoffnet.simulate`][kirchhoffnet.solve.simulate.simulate]
            does.
        options: ngspice settings.
        samples_per_netlist: samples replicated in one netlist; default all of them (one
            process per slice), 1 gives one process per sample and slice.
        jobs: ngspice processes run at once; default the number of CPUs.
        realisation: how edges become elements; default behavioural current sources.
        keep_raw: a folder to keep ngspice's raw files in, ``slice<k>_samples<i>-<j>.raw`` for
            slice k of samples i to j−1; by default they are deleted.
        progress: a bar over the groups of samples or, off a terminal, periodic lines (`kirchhoffnet._progress`).

    Shapes:
        x: (K, d). The waves hold (T,) times and (T, N_k) voltages.
    """
    circuit = as_circuit(model)
    options = options or SpiceOptions()
    if not isinstance(x, Tensor) or x.dim() != 2 or len(x) == 0:
        raise ConfigError(f"inputs must be a non-empty (samples, features) tensor, got {getattr(x, 'shape', x)!r}")
    state = circuit.input_state(x.detach().to(torch.float64).cpu())  # (N0, K) node-major
    group = len(x) if samples_per_netlist is None else int(samples_per_netlist)
    if group < 1:
        raise ConfigError(f"samples_per_netlist must be at least 1, got {samples_per_netlist}")
    starts = range(0, len(x), group)
    groups = [(state[:, i : i + group], _raw_names(keep_raw, i, min(i + group, len(x)))) for i in starts]
    workers = max(1, min(len(groups), jobs or os.cpu_count() or 1))
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:  # threads only wait on ngspice processes
        runs = pool.map(lambda g: _chain(circuit, g[0], options, realisation, g[1]), groups)
        results = list(bar(runs, desc="ngspice", unit="netlist group", total=len(groups), enabled=progress))
    seconds = time.perf_counter() - start
    waves = [[wave for part, _, _ in results for wave in part[k]] for k in range(circuit.num_slices)]
    final = np.concatenate([end for _, end, _ in results])
    metered = all(supply is not None for _, _, supply in results)
    energy, peak = (np.concatenate([supply[i] for _, _, supply in results]) if metered else None for i in (0, 1))
    return SpiceTrajectory(waves, final, seconds, circuit.num_slices * len(groups), energy, peak)


def _raw_names(folder: str | os.PathLike[str] | None, first: int, end: int) -> Callable[[int], Path | None]:
    """Where slice k of samples ``first`` to ``end``−1 keeps its raw file (nowhere without a folder)."""
    return lambda k: None if folder is None else Path(folder) / f"slice{k}_samples{first}-{end}.raw"


def _chain(
    circuit: Any,
    state: Tensor,
    options: SpiceOptions,
    realisation: Realisation | None,
    raw_file: Callable[[int], Path | None],
) -> tuple[list[list[Wave]], np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """All slices for one group of samples, from the node-major (N0, K) input state.

    Returns the waves per slice and sample, the (K, N) output state, and each sample's supply energy and peak
    power (``None`` when the realisation has no supply sources).
    """
    durations = slice_durations(circuit)
    samples = state.shape[1]
    saved: Tensor | None = None
    out: list[list[Wave]] = []
    supplies = getattr(realisation, "supplies", None)  # a SupplyMetered realisation
    energy, peak = np.zeros(samples), np.zeros(samples)
    for k in range(circuit.num_slices):
        piece = circuit.slice(k)
        state = circuit.resize(state, piece.num_state)
        title = f"kirchhoffnet slice {k} of {circuit.num_slices}, {samples} sample(s){encoding_note(circuit)}"
        deck = slice_netlist(piece, state.T, durations[k], options, title, realisation)
        result = run_ngspice(deck, timeout_s=options.timeout_s, keep_raw=raw_file(k))
        plot = result.plot("transient")
        t = plot["time"]
        if abs(t[-1] - durations[k]) > 1e-9 * durations[k]:
            raise ToolError(f"ngspice stopped slice {k} at t = {t[-1]:.6g} s of {durations[k]:.6g} s")
        if supplies is not None:
            for s in range(samples):
                sources = supplies(piece, f"_{s}" if samples > 1 else "")
                drawn = np.zeros_like(t) - sum(volts * plot[column] for column, volts in sources)  # into + terminal
                energy[s] += float(np.trapezoid(drawn, t))
                peak[s] = max(peak[s], float(np.max(drawn)))
        # With `uic`, ngspice 39 writes no point at t = 0; the state there is the initial condition.
        first = t[0] > 0
        if first:
            t = np.concatenate([[0.0], t])
        waves = []
        for s in range(samples):
            v = np.stack([plot[c] for c in node_columns(piece, samples, s)], axis=1)
            if first:
                v = np.concatenate([state[:, s].numpy()[None], v])
            waves.append((t + circuit.times[k], v))
        out.append(waves)
        state = torch.from_numpy(np.stack([v[-1] for _, v in waves], axis=1))
        if circuit.residual is not None:
            if k == circuit.residual[0]:
                saved = state
            if k == circuit.residual[1] and saved is not None:
                state = state + saved
    return out, state.T.numpy(), None if supplies is None else (energy, peak)
