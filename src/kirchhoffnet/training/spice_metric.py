"""``kirchhoffnet spice verify --metric``: a trained model's task metric computed from ngspice's outputs.

`kirchhoffnet.spice.verify` runs every slice in ngspice, each started from the voltages ngspice itself ended the
slice before with, so its output state is what the whole analog network would produce. Here the model's own readout
turns that state into the task's outputs and the run's metric is computed from them, beside the same metric from
kirchhoffnet's float64 solve of the same inputs. Which inputs and which metric fit needs the run's task and test
set, so this lives above them, as the hw studies do.

A flow is scored by its samples (base → data), which both sides compute, and with ``nll_points`` by its NLL
from ngspice ([`ngspice_nll`][kirchhoffnet.training.spice_metric.ngspice_nll]): ngspice runs the circuit forward, so
the density of a data point x comes from the change of variables through ngspice's own forward map F, whose
Jacobian is measured by finite differences of transients rather than read off a device law.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kirchhoffnet._finite import require_finite
from kirchhoffnet.circuit import Encoding
from kirchhoffnet.errors import ConfigError, ToolError
from kirchhoffnet.hardware.metrics import energy_distance
from kirchhoffnet.models import Flow, Network, standard_normal_log_prob
from kirchhoffnet.runs import OpenedRun
from kirchhoffnet.solve import simulate
from kirchhoffnet.spice import (
    REFERENCE_SOLVER,
    SpiceOptions,
    VerifyReport,
    load_parasitics,
    spice_trajectory,
    verify,
)
from kirchhoffnet.spice.netlist import Realisation, as_circuit
from kirchhoffnet.training.hw import open_saved, study_inputs


def spice_metric(
    path: str | os.PathLike[str],
    samples: int,
    *,
    options: SpiceOptions | None = None,
    realisation: Realisation | None = None,
    rails: tuple[float, float] | None = None,
    jobs: int | None = None,
    seed: int = 0,
    nll_points: int = 0,
    newton_steps: int = 0,
    progress: bool = False,
    parasitics: tuple[float, str | os.PathLike[str] | None] | None = None,
) -> tuple[dict[str, Any], VerifyReport]:
    """The task metric of the model at ``path`` from ngspice's outputs and from kirchhoffnet's, on ``samples``
    held-out inputs (a classifier's or regression's test set, a flow's base samples).

    Args:
        path: a run directory of ``kirchhoffnet train`` (classification or regression), or any saved flow.
        samples: held-out inputs simulated.
        options: ngspice settings.
        realisation: how edges become SPICE elements (default behavioural sources).
        rails: the supply ``(low, high)`` in V that every node must stay within in ngspice.
        jobs: ngspice processes at once.
        seed: seed of a flow's base samples (and of its held-out data points).
        nll_points: a flow's held-out data points whose NLL is also computed from ngspice (0: none), under
            ``"nll"``; see [`ngspice_nll`][kirchhoffnet.training.spice_metric.ngspice_nll].
        newton_steps: Newton steps on ngspice's map for each of those points.
        progress: show ngspice's progress.
        parasitics: ``(time unit in s, card or None)``: both sides run the model with its edge transistors'
            terminal capacitances on its nodes ([`load_parasitics`][kirchhoffnet.spice.load_parasitics]).

    Returns:
        The JSON-ready report, and the [`VerifyReport`][kirchhoffnet.spice.VerifyReport] behind it (waveforms).
    """
    if int(samples) < 1:
        raise ConfigError(f"--samples must be a positive count, got {samples}")
    if rails is not None and not rails[0] < rails[1]:
        raise ConfigError(f"--rails LOW HIGH needs LOW < HIGH, got {rails[0]:g} and {rails[1]:g}")
    if int(nll_points) < 0:
        raise ConfigError(f"--nll-points must be a count of data points (0: no NLL), got {nll_points}")
    _check_newton_steps(newton_steps)
    saved = open_saved(path)
    model = saved.model
    if nll_points and not isinstance(model, Flow):
        raise ConfigError(f"{path}: --nll-points scores a flow's density, but this is a {type(model).__name__}")
    targets = _targets(saved, samples)
    x = study_inputs(saved, samples, seed=seed).to(torch.float64)
    figures: dict[str, Any] = {}
    if parasitics is not None:
        model, figures["parasitics"] = load_parasitics(model, x, *parasitics)
    report = verify(model, x, options=options, jobs=jobs, realisation=realisation, progress=progress)
    circuit = copy.deepcopy(as_circuit(model)).to(torch.float64)
    with torch.no_grad():
        ours_final, _ = simulate(circuit, x, solver=REFERENCE_SOLVER)
    spice_final = circuit.encoding.decode(torch.from_numpy(report.spice_final))  # ngspice's volts → data
    slices = [
        {
            "slice": k,
            "max_abs_error_v": error,
            "swing_v": swing,
            "error_percent_of_swing": 100 * error / max(swing, 1e-300),
            "ngspice_min_v": report.slice_spice_min_v[k],
            "ngspice_max_v": report.slice_spice_max_v[k],
        }
        for k, (error, swing) in enumerate(zip(report.slice_max_abs_error_v, report.slice_swing_v, strict=True))
    ]
    low, high = min(report.slice_spice_min_v), max(report.slice_spice_max_v)
    result: dict[str, Any] = {
        "source": str(path),
        "model": type(model).__name__,
        "samples": len(x),
        "slices": slices,
        "max_abs_error_v": report.max_abs_error_v,
        "max_error_percent_of_swing": max(row["error_percent_of_swing"] for row in slices),
        "ngspice_min_v": low,
        "ngspice_max_v": high,
        "rails_v": None if rails is None else list(rails),
        "within_rails": None if rails is None else bool(rails[0] <= low and high <= rails[1]),
        "supply_energy_j_per_input": report.supply_energy_j,
        "supply_peak_power_w": report.supply_peak_power_w,
        **_metric(saved, model, ours_final, spice_final, targets, seed),
        **figures,
        "verify": report.to_dict(),
    }
    if nll_points:
        assert isinstance(model, Flow)  # refused above, before ngspice ran
        held_out, _ = saved.data(int(nll_points), seed)
        result["nll"] = ngspice_nll(
            model, held_out, newton_steps=newton_steps, options=options, realisation=realisation, jobs=jobs,
            progress=progress,
        )  # fmt: skip
    return result, report


def _targets(saved: OpenedRun, samples: int) -> Tensor | None:
    """A network's test targets (first ``samples``); ``None`` for a flow, which is scored by its samples."""
    if isinstance(saved.model, Flow):
        return None
    if not isinstance(saved.model, Network) or saved.task is None or saved.task.primary not in ("accuracy", "mse"):
        raise ConfigError(
            f"{saved.path}: --metric scores classification and regression runs of `kirchhoffnet train` (their test "
            "set and metric are known) and flows (by their samples)"
        )
    _, y = saved.data(samples)
    if y is None:
        raise ConfigError(f"{saved.path}: the run's test split holds no targets to score outputs against")
    return y


def _metric(
    saved: OpenedRun, model: Any, ours: Tensor, spice: Tensor, targets: Tensor | None, seed: int
) -> dict[str, Any]:
    """The metric on both sides' output states, through the model's own readout."""
    if targets is None:
        return _flow_samples(saved, ours, spice, seed)
    readout = None if model.readout is None else copy.deepcopy(model.readout).to(torch.float64)
    with torch.no_grad():
        out_ours, out_spice = (v if readout is None else readout(v) for v in (ours, spice))
    task = saved.task
    assert task is not None  # _targets refused a network without one
    difference = float((out_spice - out_ours).abs().max())
    if task.primary == "accuracy":
        labels = targets.to(out_ours.device)
        ours_class, spice_class = out_ours.argmax(1), out_spice.argmax(1)
        return {
            "metric": "accuracy",
            "ngspice": float((spice_class == labels).double().mean()),
            "kirchhoffnet": float((ours_class == labels).double().mean()),
            "class_agreement": float((spice_class == ours_class).double().mean()),
            "max_output_difference": difference,
        }
    y = targets.to(torch.float64).reshape(len(out_ours), -1)
    return {
        "metric": "mse",
        "ngspice": float(((out_spice - y) ** 2).mean()),
        "kirchhoffnet": float(((out_ours - y) ** 2).mean()),
        "max_output_difference": difference,
    }


def _flow_samples(saved: OpenedRun, ours: Tensor, spice: Tensor, seed: int) -> dict[str, Any]:
    """A flow's samples on both sides: how far apart they are, and (where the data set is known) the energy
    distance of each to as many held-out data points."""
    distance = (spice - ours).norm(dim=1)
    figures: dict[str, Any] = {
        "metric": "samples",
        "max_sample_distance": float(distance.max()),
        "mean_sample_distance": float(distance.mean()),
        "samples_ngspice": spice.tolist(),
        "samples_kirchhoffnet": ours.tolist(),
    }
    if saved.dataset is not None and len(ours) >= 2:
        data, _ = saved.data(len(ours), seed)
        figures |= {
            "dataset": saved.dataset,
            "energy_distance_ngspice": energy_distance(spice, data),
            "energy_distance_kirchhoffnet": energy_distance(ours, data),
        }
    return figures


def ngspice_nll(
    flow: Flow,
    x: Tensor,
    *,
    newton_steps: int = 0,
    options: SpiceOptions | None = None,
    realisation: Realisation | None = None,
    jobs: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The flow's NLL of data points ``x`` from ngspice's forward map F (base → data), beside kirchhoffnet's.

    kirchhoffnet's reverse solve gives each point's base point z; Newton steps on ngspice's map refine it
    towards F(z) = x; then ``log p(x) = log N(z) − log|det J_F(z)|``. ngspice cannot run backwards nor report a
    divergence, so J_F comes from central differences of its transients, with the perturbed starts of each point
    in the same netlist as the point itself: they share ngspice's time steps, so much of its truncation error
    cancels in the differences. The step ``h = (3·ε)^(1/3)``, ε = reltol + vntol, balances that error (ε/h)
    against the differences' own (h²·F‴/6); the Jacobian taken at h/2 as well estimates the error. h is in volts
    on the nodes: an encoded flow's ngspice voltages are decoded by its circuit's encoding before anything is scored.

    Args:
        flow: the flow; a float64 copy is solved with
            [`REFERENCE_SOLVER`][kirchhoffnet.spice.REFERENCE_SOLVER] for kirchhoffnet's side.
        x: (N, d) held-out data points.
        newton_steps: Newton steps on F(z) = x, each one more ngspice run of every point (0: z from kirchhoffnet).
        options: ngspice settings.
        realisation: how edges become SPICE elements (default behavioural sources).
        jobs: ngspice processes at once.
        progress: show ngspice's progress.

    Returns:
        JSON-ready figures: ``nll_ngspice`` and ``nll_kirchhoffnet`` (nats, mean over the points), the per-point
        log-density difference, the residual max |F(z) − x| (V), the Jacobian's error estimate, and per-point
        values under ``per_point``.
    """
    if not isinstance(flow, Flow):
        raise ConfigError(f"the NLL from ngspice needs a kirchhoffnet Flow, got {type(flow).__name__}")
    _check_newton_steps(newton_steps)
    options = options or SpiceOptions()
    ours = Flow(copy.deepcopy(flow.circuit).to(torch.float64), solver=REFERENCE_SOLVER)
    x = x.detach().to(torch.float64).cpu()
    with torch.no_grad():
        z, log_p_ours = ours.inverse(x), ours.log_prob(x)
    encoding = flow.circuit.encoding
    step = (3 * (options.reltol + options.vntol)) ** (1 / 3) / encoding.scale  # h volts on the nodes, in data units
    residuals: list[float] = []
    start, runs = time.perf_counter(), 0
    for k in range(int(newton_steps) + 1):
        image, jacobian, jacobian_half, done = _ngspice_jacobian(ours, z, step, options, realisation, jobs, progress)
        runs += done
        miss = image - x
        residuals.append(float(miss.abs().max()) * encoding.scale)
        if k < newton_steps:
            z = z - torch.linalg.solve(jacobian, miss.unsqueeze(-1)).squeeze(-1)
    log_det = torch.linalg.slogdet(jacobian).logabsdet
    log_det_error = (log_det - torch.linalg.slogdet(jacobian_half).logabsdet).abs()
    log_p = standard_normal_log_prob(z) - log_det
    gap = (log_p - log_p_ours).abs()
    residual = miss.abs().amax(dim=1) * encoding.scale  # in volts on the nodes
    return {
        "points": len(x),
        "newton_steps": int(newton_steps),
        "step_v": step * encoding.scale,
        "nll_ngspice": float(-log_p.mean()),
        "nll_kirchhoffnet": float(-log_p_ours.mean()),
        "nll_difference": float(log_p_ours.mean() - log_p.mean()),
        "max_log_p_difference": float(gap.max()),
        "mean_log_p_difference": float(gap.mean()),
        "max_residual_v": float(residual.max()),
        "mean_residual_v": float(residual.mean()),
        "max_residual_v_per_newton_step": residuals,
        "max_jacobian_error": float((jacobian - jacobian_half).abs().max()),
        "max_log_det_error": float(log_det_error.max()),
        "ngspice_s": time.perf_counter() - start,
        "ngspice_runs": runs,
        "per_point": {
            "log_p_ngspice": log_p.tolist(),
            "log_p_kirchhoffnet": log_p_ours.tolist(),
            "residual_v": residual.tolist(),
            "log_det_error": log_det_error.tolist(),
        },
    }


def _check_newton_steps(newton_steps: int) -> None:
    if int(newton_steps) < 0:
        raise ConfigError(f"--newton-steps must be a count of Newton steps (0: none), got {newton_steps}")


def _ngspice_jacobian(
    flow: Flow,
    z: Tensor,
    step: float,
    options: SpiceOptions,
    realisation: Realisation | None,
    jobs: int | None,
    progress: bool,
) -> tuple[Tensor, Tensor, Tensor, int]:
    """F(z) and its Jacobian by central differences at ``step`` and at ``step``/2, from one netlist per point
    holding it and its 4·d perturbed copies.

    Shapes:
        z: (N, d). Returns F (N, d), the two Jacobians (N, d, d) with ``J[n, a, i] = ∂F_a/∂z_i``, and the
        ngspice runs made.
    """
    d = flow.dim
    axes = torch.eye(d, dtype=torch.float64)
    signed = (step, -step, step / 2, -step / 2)
    offsets = torch.cat([torch.zeros(1, d, dtype=torch.float64), *(s * axes for s in signed)])
    starts = (z[:, None, :] + offsets).reshape(-1, d)
    trajectory = spice_trajectory(
        flow.circuit, starts, options, samples_per_netlist=len(offsets), jobs=jobs, realisation=realisation,
        progress=progress,
    )  # fmt: skip
    ends = data_from_volts(trajectory.final, flow.circuit.encoding).reshape(len(z), len(offsets), d)
    plus, minus, plus_half, minus_half = ends[:, 1:].split(d, dim=1)
    jacobian = (plus - minus).transpose(1, 2) / (2 * step)
    jacobian_half = (plus_half - minus_half).transpose(1, 2) / step
    return ends[:, 0], jacobian, jacobian_half, trajectory.runs


def data_from_volts(volts: np.ndarray, encoding: Encoding) -> Tensor:
    """A flow's data coordinates from ngspice's (K, d) final node voltages, decoded by the circuit's encoding."""
    finite = require_finite("ngspice's final node voltages", volts, "loosen --reltol or check the netlist", ToolError)
    return encoding.decode(torch.from_numpy(finite).to(torch.float64))
