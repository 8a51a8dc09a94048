"""Verification: the same circuit and inputs through ngspice and through kirchhoffnet, compared."""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet._finite import require_finite
from kirchhoffnet.errors import ConfigError, ToolError
from kirchhoffnet.solve import Solver, resolve_solver, trajectory
from kirchhoffnet.spice.netlist import Realisation, SpiceOptions, as_circuit
from kirchhoffnet.spice.report import VerifyReport
from kirchhoffnet.spice.transient import spice_trajectory

REFERENCE_SOLVER = Solver(method="dopri5", rtol=1e-8, atol=1e-8)
"""kirchhoffnet's side of a verification: float64 at 1e-8, ~1e-7 V from the exact solution."""


def input_dim(model: Any) -> int:
    """Input features the model takes: a flow's dimension, the input nodes, or the first slice's nodes."""
    if isinstance(getattr(model, "dim", None), int):
        return int(model.dim)
    circuit = as_circuit(model)
    return len(circuit.input_nodes) if circuit.input_nodes else circuit.slice(0).num_state


def random_inputs(model: Any, samples: int, seed: int = 0) -> Tensor:
    """(samples, d) standard-normal inputs (a flow's base samples), reproducible from ``seed``."""
    if int(samples) < 1:
        raise ConfigError(f"samples must be a positive count, got {samples}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(int(samples), input_dim(model), generator=generator, dtype=torch.float64)


def verify(
    model: Any,
    x: Tensor | int,
    *,
    options: SpiceOptions | None = None,
    solver: Solver | str | dict[str, Any] | None = None,
    seed: int = 0,
    samples_per_netlist: int | None = 1,
    jobs: int | None = None,
    realisation: Realisation | None = None,
    keep_raw: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> VerifyReport:
    """Simulate ``x`` in ngspice and with [`kirchhoffnet.trajectory`][kirchhoffnet.trajectory], and compare node
    voltages.

    kirchhoffnet runs a float64 copy of the circuit, so the comparison measures the netlist
    and ngspice, not float32 rounding. Flows run forward in time (sampling, base → data).

    Args:
        model: a Circuit, Flow or Network.
        x: (K, d) inputs, or a count K of standard-normal inputs drawn with ``seed``.
        options: ngspice settings (the output points per slice are the comparison grid).
        solver: kirchhoffnet's solver; default [`REFERENCE_SOLVER`][kirchhoffnet.spice.REFERENCE_SOLVER].
        seed: seed of the drawn inputs.
        samples_per_netlist: samples replicated in one netlist (default 1: one ngspice process
            per sample and slice, which measured fastest; see docs/spice.md).
        jobs: ngspice processes at once (default the number of CPUs).
        realisation: how edges become SPICE elements; default behavioural current sources
            ([`kirchhoffnet.spice.mos.TransistorRelu`][kirchhoffnet.spice.TransistorRelu] builds MosRelu edges from
            MOSFETs).
        keep_raw: a folder to keep ngspice's raw files in (see
            [`spice_trajectory`][kirchhoffnet.spice.spice_trajectory]).
        progress: show ngspice's progress over the netlists (a bar, or periodic lines off a terminal).

    Returns:
        A [`VerifyReport`][kirchhoffnet.spice.VerifyReport]; ``report.max_abs_error_v`` is the headline figure.
    """
    circuit = copy.deepcopy(as_circuit(model)).to(torch.float64)
    options = options or SpiceOptions()
    inputs = random_inputs(model, x, seed) if isinstance(x, int) else x.detach().to(torch.float64).cpu()
    chosen = REFERENCE_SOLVER if solver is None else resolve_solver(solver)
    spice = spice_trajectory(
        circuit,
        inputs,
        options,
        samples_per_netlist=samples_per_netlist,
        jobs=jobs,
        realisation=realisation,
        keep_raw=keep_raw,
        progress=progress,
    )
    start = time.perf_counter()
    with torch.no_grad():
        ours, _ = trajectory(circuit, inputs, solver=chosen, points_per_slice=int(options.points))
    our_seconds = time.perf_counter() - start
    times, mine, theirs = [], [], []
    for (t, v), waves in zip(ours, spice.waves, strict=True):
        grid = t.numpy()
        times.append(grid)
        mine.append(v.numpy())
        theirs.append(np.stack([_resample(grid, ts, vs) for ts, vs in waves], axis=1))
    for k, (a, b) in enumerate(zip(mine, theirs, strict=True)):  # NaN > limit is false: NaN must never pass
        require_finite(
            f"ngspice's node voltages of slice {k}",
            b,
            "the simulator diverged or its output is corrupt; loosen --reltol or check the netlist",
            ToolError,
        )
        require_finite(f"kirchhoffnet's node voltages of slice {k}", a, "the circuit blows up on these inputs")
    per_slice = [np.abs(a - b) for a, b in zip(mine, theirs, strict=True)]
    errors = np.concatenate([e.ravel() for e in per_slice])
    boundary = max(float(np.abs(a[-1] - b[-1]).max()) for a, b in zip(mine, theirs, strict=True))
    return VerifyReport(
        max_abs_error_v=float(errors.max()),
        mean_abs_error_v=float(errors.mean()),
        boundary_max_abs_error_v=boundary,
        peak_abs_voltage_v=max(float(np.abs(v).max()) for v in mine),
        nodes=max(circuit.widths),
        edges=sum(circuit.slice(k).num_edges for k in range(circuit.num_slices)),
        samples=len(inputs),
        slices=circuit.num_slices,
        ngspice_s=spice.seconds,
        kirchhoffnet_s=our_seconds,
        ngspice_runs=spice.runs,
        devices=[circuit.slice(k).device_family.name for k in range(circuit.num_slices)],
        spice_options=options.to_dict(),
        solver=chosen.to_dict(),
        slice_max_abs_error_v=[float(e.max()) for e in per_slice],
        slice_swing_v=[float(np.ptp(v)) for v in mine],
        slice_spice_min_v=[min(float(v.min()) for _, v in waves) for waves in spice.waves],
        slice_spice_max_v=[max(float(v.max()) for _, v in waves) for waves in spice.waves],
        supply_energy_j=None if spice.supply_energy_j is None else float(spice.supply_energy_j.mean()),
        supply_peak_power_w=None if spice.supply_peak_power_w is None else float(spice.supply_peak_power_w.max()),
        times=times,
        ours=mine,
        spice=theirs,
        spice_final=spice.final,
    )


def _resample(grid: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ngspice's (T', N) voltages, linearly interpolated onto ``grid`` (T,) → (T, N).

    ngspice's own points are at most ``max_step`` apart, so linear interpolation adds at most
    max_step²/8 · |d²v/dt²|, far below the tolerances compared.
    """
    return np.stack([np.interp(grid, t, v[:, n]) for n in range(v.shape[1])], axis=1)
