"""``kirchhoffnet spice verify --metric``: a trained model's task metric computed from ngspice's outputs.

`kirchhoffnet.spice.verify` runs every slice in ngspice, each started from the voltages ngspice itself ended the
slice before with, so its output state is what the whole analog network would produce. Here the model's own readout
turns that state into the task's outputs and the run's metric is computed from them, beside the same metric from
kirchhoffnet's float64 solve of the same inputs. Which inputs and which metric fit needs the run's task and test
set, so this lives above them, as the hw studies do.

A flow is scored by its samples (base → data), which both sides compute. Its NLL is not: the density of a
data point needs the reverse-time solve (data → base) and the divergence of the device law along it, and
neither is what the analog circuit computes — ngspice runs the circuit forward, and its transistors have no
divergence that kirchhoffnet could read off them.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet.errors import ConfigError
from kirchhoffnet.hardware.metrics import energy_distance
from kirchhoffnet.models import Flow, Network
from kirchhoffnet.runs import OpenedRun
from kirchhoffnet.solve import simulate
from kirchhoffnet.spice import REFERENCE_SOLVER, SpiceOptions, VerifyReport, load_parasitics, verify
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
    saved = open_saved(path)
    model = saved.model
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
