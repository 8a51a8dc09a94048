"""Evaluating a trained model on its task: held-out NLL, samples, plots and a metrics file."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kirchhoffnet._progress import bar
from kirchhoffnet.compat import is_original_result, load_original, read_config
from kirchhoffnet.data import TOY_SETS, sample_toy
from kirchhoffnet.data.seeds import draw_seed
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.models import Flow
from kirchhoffnet.tasks.plots import samples_vs_data


def _batched(
    flow: Flow, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int, label: str, progress: bool
) -> tuple[torch.Tensor, list[int]]:
    """Apply ``fn`` (a method of ``flow``) batch by batch (bounded memory), collecting outputs and NFE."""
    outputs, nfe = [], []
    for start in bar(range(0, len(x), batch), desc=label, unit="batch", enabled=progress, leave=False):
        outputs.append(fn(x[start : start + batch]))
        assert flow.stats is not None  # every method of a flow solves
        nfe.append(sum(flow.stats.nfe))
    return torch.cat(outputs), nfe


def flow_2d_metrics(
    flow: Flow,
    data: torch.Tensor,
    plot_path: str | os.PathLike[str],
    title: str,
    seed: int = 0,
    batch: int = 2_000,
    grid: int = 150,
    progress: bool = True,
) -> dict[str, Any]:
    """Held-out NLL in nats of ``data`` (N, 2), and a plot of data, samples and the model density.

    As many model samples as data points are drawn from base points seeded by ``seed`` (drawn on the CPU, so
    that the samples do not depend on the flow's device). The solves run where the flow's parameters are; the
    results come back to the CPU for the statistics and the plot.
    """
    first = next(flow.parameters())
    dtype, where = first.dtype, first.device
    data = data.to(dtype=dtype, device="cpu")
    num_samples = len(data)
    start = time.perf_counter()
    with torch.no_grad():
        log_p, nfe = _batched(flow, flow.log_prob, data.to(where), batch, "log p(x)", progress)
        base = torch.Generator().manual_seed(draw_seed(seed, "base"))
        z = torch.randn(num_samples, flow.dim, generator=base, dtype=dtype)
        samples, _ = _batched(flow, flow.sample, z.to(where), batch, "sampling", progress)
        lo, hi = np.percentile(data.numpy(), [0.5, 99.5], axis=0)
        axes = [np.linspace(a - 0.15 * (b - a), b + 0.15 * (b - a), grid) for a, b in zip(lo, hi, strict=True)]
        xx, yy = np.meshgrid(*axes, indexing="xy")
        points = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], axis=1)).to(dtype=dtype, device=where)
        grid_log_p, _ = _batched(flow, flow.log_prob, points, batch, "density map", progress)
    log_p, samples, grid_log_p = log_p.cpu(), samples.cpu(), grid_log_p.cpu()
    elapsed = time.perf_counter() - start
    nll = float(-log_p.mean())
    if not math.isfinite(nll):
        raise ConfigError("the model's log-density is not finite on the held-out data")
    figure = samples_vs_data(
        data.numpy(),
        samples.numpy(),
        (xx, yy, grid_log_p.numpy().reshape(xx.shape)),
        f"{title}: held-out NLL {nll:.3f} nats",
    )
    save_figure(figure, plot_path)
    return {
        "nll_nats": nll,
        "nll_stderr": float(log_p.std() / math.sqrt(num_samples)),
        "num_test_points": num_samples,
        "num_params": sum(p.numel() for p in flow.parameters()),
        "nfe_per_batch_log_prob": float(np.mean(nfe)),
        "solver": flow.solver.to_dict(),
        "eval_wall_time_s": elapsed,
    }


def evaluate_flow_2d(
    flow: Flow,
    dataset: str,
    out_dir: str | os.PathLike[str],
    num_samples: int = 10_000,
    seed: int = 0,
    batch: int = 2_000,
    grid: int = 150,
    progress: bool = True,
) -> dict[str, Any]:
    """Held-out NLL in nats, samples and a density map for a 2-D flow; writes metrics.json and samples.png."""
    if dataset not in TOY_SETS:
        raise ConfigError(f"no 2-D data set named {dataset!r}; choose one of: {', '.join(TOY_SETS)}")
    out = Path(out_dir)
    data = torch.from_numpy(sample_toy(dataset, num_samples, seed=draw_seed(seed, "data")))
    metrics = flow_2d_metrics(flow, data, out / "samples.png", dataset, seed, batch, grid, progress)
    metrics = {"task": "flow2d", "dataset": dataset, "seed": seed, **metrics}
    write_json_atomic(out / "metrics.json", metrics)
    return metrics


def evaluate_path(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """Evaluate a result directory of the original code (2-D flows for now)."""
    if not is_original_result(path):
        raise ConfigError(f"{path} is not a result directory (config.yaml + model.pth of the original code)")
    model = load_original(path)
    bench = read_config(path).get("test_bench")
    if not isinstance(model, Flow) or bench not in TOY_SETS:
        raise ConfigError(
            f"evaluation of {bench!r} results is not supported yet; supported: 2-D flows ({', '.join(TOY_SETS)})"
        )
    metrics = evaluate_flow_2d(model, bench, out_dir, **kwargs)
    metrics["source"] = str(Path(path).resolve())
    write_json_atomic(Path(out_dir) / "metrics.json", metrics)
    return metrics
