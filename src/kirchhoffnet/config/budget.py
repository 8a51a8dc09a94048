"""The runtime pre-flight: refuse a config whose run cannot fit in memory or time, before building it.

A config can be valid key by key and still absurd as a whole (``hidden_nodes: 1e9``, millions of
edges times a large batch, 1e10 data points, a step of 1e-12); building it would hang or be killed
by the kernel. [`preflight`][kirchhoffnet.config.preflight] bounds, for every command that runs a config:

* memory: the estimate counts only what certainly has to exist, so it errs low: the parameters
  (with their gradients and Adam moments when training), the edge lists, a few (batch, edges)
  tensors per differentiable evaluation of the circuit's field, the solver's copies of the state,
  and the data sets and plot grids the task draws;
* time grids: slice boundaries representable in the run's dtype, fixed-step grids within
  `MAX_FIXED_STEPS`, and a capacitance whose time constant an
  explicit solver can follow within that many steps.

`check_diffusion` does the same for a diffusion config (network width, batches, samples,
sampler steps).
"""

from __future__ import annotations

from typing import Any

import torch

from kirchhoffnet.config.circuit import device_template
from kirchhoffnet.config.tasks import reference_solver
from kirchhoffnet.data.images import IMAGE_SETS
from kirchhoffnet.devices import resolve
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.models.baselines import MLP, ODENet
from kirchhoffnet.runtime import GB, memory_limit, require_memory
from kirchhoffnet.solve.solver import MAX_FIXED_STEPS, check_time_grid

PARAMETER_COPIES = 4  # the parameters, their gradients, Adam's two moments
BATCH_BUFFERS = 3  # (B, E) tensors of a differentiable field evaluation: pre-activations, currents, slopes
INDEX_BYTES = 16  # a (2, E) int64 edge list
SOLVER_STATES = 8  # copies of the (N, B) state an adaptive step keeps: dopri5's 7 stages and the state
MIN_CHUNK_EDGES = 256  # inference evaluates the field over chunks of at least this many edges
DATA_COPIES = 2  # a data set exists at least twice: as drawn (float64 numpy) and as the run's tensor
MAX_SETTLE_STEPS = 10_000
"""Most relaxation steps of a score circuit's hidden nodes per evaluation (the shipped configs use 4–40)."""


def estimate(config: Any, training: bool = True) -> tuple[float, str, str]:
    """(bytes, the key of the largest term, its breakdown and remedy) for a run config's circuit;
    (0, "", "") without one.

    Args:
        training: count the optimiser's copies of the parameters and the (batch, edges) tensors of
            a differentiable field evaluation; otherwise only inference (chunked over the edges).
    """
    circuit = getattr(config, "circuit", None)
    if circuit is None:
        terms = {**data_terms(config), **baseline_terms(config, training)}
        if not terms:
            return 0.0, "", ""
        (what, key, remedy), size = max(terms.items(), key=lambda item: item[1])
        return float(sum(terms.values())), key, f"({what} {size / GB:.3g} GB); {remedy}"
    scalar = 8 if config.dtype == "float64" else 4
    topologies = circuit.slice_topologies()
    edges = [t.edge_count for t in topologies]
    widest = max(range(len(edges)), key=edges.__getitem__)
    topology_key = f"circuit.topology[{0 if len(circuit.topology) == 1 else widest}]"
    per_edge = device_template(circuit.device).num_params * scalar * (PARAMETER_COPIES if training else 1) + INDEX_BYTES
    eval_batch = config.train.eval_batch_size
    nodes = max(t.total_nodes for t in topologies)
    terms = {  # (what, the key to name, the remedy): bytes
        **data_terms(config),
        ("parameters", topology_key, "use a smaller topology"): sum(edges) * per_edge,
        # solver stages of the state, and the kernel's two scratch blocks of >= 256 edges per sample
        ("solver states", "train.eval_batch_size", "lower train.eval_batch_size"): (
            (nodes * SOLVER_STATES + 2 * MIN_CHUNK_EDGES) * eval_batch * scalar
        ),
    }
    if training:
        batch_buffers = edges[widest] * config.train.batch_size * scalar * BATCH_BUFFERS
        terms["(batch, edges) buffers", topology_key, "use a smaller topology or train.batch_size"] = batch_buffers
    _, key, remedy = max(terms, key=terms.__getitem__)
    breakdown = f"{edges[widest]:,} edges in the largest of {len(edges)} slices; " + ", ".join(
        f"{what} {size / GB:.3g} GB" for (what, _, _), size in terms.items()
    )
    return float(sum(terms.values())), key, f"({breakdown}); {remedy}"


def data_terms(config: Any) -> dict[tuple[str, str, str], float]:
    """Bytes of the data a task draws or reads, and of its plot grids, keyed like `estimate`'s terms.

    Image sets are bounded by their files and left out; drawn sets (2-D toys, friedman, base samples)
    and density grids are as large as the config says.
    """
    scalar = 8  # data are drawn in float64 before conversion
    terms: dict[tuple[str, str, str], float] = {}
    data: Any = getattr(config, "data", None)
    for key in ("train_size", "val_size", "test_size"):  # 2-D toy sets: (n, 2) points
        size = getattr(data, key, None)
        if isinstance(size, int) and getattr(config, "task", "") == "flow2d":
            terms[f"data.{key} points", f"data.{key}", f"lower data.{key}"] = size * 2 * scalar * DATA_COPIES
    if getattr(data, "name", None) == "friedman":
        key = "data.n_samples"
        terms["friedman samples", key, "lower data.n_samples or data.n_features"] = (
            data.n_samples * (data.n_features + 1) * scalar * DATA_COPIES
        )
    for key in ("val_samples", "test_samples"):  # density matching: base samples pushed through the flow
        size = getattr(config, key, None)
        if isinstance(size, int):
            terms[f"{key} base samples", key, f"lower {key}"] = size * 2 * scalar * DATA_COPIES
    grid = getattr(config, "grid", None)
    if isinstance(grid, int):  # density maps are grid² points; image sample grids grid² images
        pixels = max(config.circuit.widths) if getattr(config, "task", "") == "mnist_gen" else 2
        terms["plot grid points", "grid", "lower grid"] = grid * grid * pixels * scalar * DATA_COPIES
    return terms


def baseline_terms(config: Any, training: bool = True) -> dict[tuple[str, str, str], float]:
    """Bytes of a baseline: its weights (with gradients and Adam moments when training) and its activations: an
    MLP's (batch, width) layers, an ODE-Net's stem maps and the solver's copies of the ODE block's state."""
    baseline = getattr(config, "baseline", None)
    if baseline is None:
        return {}
    scalar = 8 if config.dtype == "float64" else 4
    data: Any = getattr(config, "data", None)
    batch = max(config.train.batch_size, config.train.eval_batch_size)
    copies = PARAMETER_COPIES if training else 1
    if hasattr(baseline, "hidden"):
        widths = [getattr(data, "num_features", None) or 1, *baseline.hidden, 1]
        key, remedy = "baseline.hidden", "use narrower baseline.hidden layers"
        return {
            ("MLP weights", key, remedy): MLP.parameter_count(widths[0], baseline.hidden) * scalar * copies,
            ("MLP activations", key, remedy + " or smaller batches"): batch * sum(widths) * scalar * BATCH_BUFFERS,
        }
    c, h, w = data.shape
    classes = IMAGE_SETS[data.name].num_classes
    settings = (baseline.channels, baseline.downsamplings, baseline.t_end)
    weights = ODENet.parameter_count(c, h, w, classes, *settings)
    scale = 4**baseline.downsamplings
    key, remedy = "baseline.channels", "use fewer baseline.channels"
    maps = batch * baseline.channels * h * w * scalar
    return {
        ("ODE-Net weights", key, remedy): weights * scalar * copies,
        ("ODE-Net stem maps", key, remedy + " or smaller batches"): maps * BATCH_BUFFERS,
        ("ODE-Net solver states", key, remedy + " or smaller batches"): maps / scale * SOLVER_STATES,
    }


def check_time_grids(config: Any) -> None:
    """Slice boundaries representable in the run's dtype, fixed-step grids within the step limit, and
    a capacitance an explicit solver can follow: the normalised dynamics dv/dt = i(v)/c have a time
    constant of c at unit conductance, so a run over T time units needs at least ~T/c steps.

    Raises:
        ConfigError: naming circuit.times, solver.step_size or circuit.capacitance with the estimate
            and the limit.
    """
    circuit, solver = getattr(config, "circuit", None), getattr(config, "solver", None)
    if circuit is None or solver is None:
        return
    times = circuit.times if circuit.times is not None else [float(k) for k in range(circuit.num_slices + 1)]
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    check_time_grid(times, solver.build(), dtype, "circuit.times", "solver.step_size")
    if config.train.reference_solver is not None:  # every validation also solves on its grid
        reference = reference_solver(config).build()
        check_time_grid(times, reference, dtype, "circuit.times", "train.reference_solver.step_size")
    duration = times[-1] - times[0]
    steps = duration / circuit.capacitance
    if steps > MAX_FIXED_STEPS:
        raise ConfigError(
            f"circuit.capacitance: {circuit.capacitance:g} makes the circuit's time constant {circuit.capacitance:g} "
            f"for a run of {duration:g} time units; any explicit solver needs ~{steps:.3g} steps to follow it, more "
            f"than the limit of {MAX_FIXED_STEPS:.0e}; use a capacitance of order 1 (the normalised unit) or "
            "shorter circuit.times"
        )


def preflight(config: Any, training: bool = True) -> None:
    """Everything a run config will cost, bounded before anything is built, read or written:
    `check_time_grids` and [`check_memory`][kirchhoffnet.config.check_memory].

    Raises:
        ConfigError: naming the key to change, the estimate and the limit.
    """
    if config.task == "diffusion":
        check_diffusion(config)
        return
    check_time_grids(config)
    check_memory(config, training)


def check_memory(config: Any, training: bool = True) -> None:
    """Raise [`ConfigError`][kirchhoffnet.errors.ConfigError] if the run's circuit certainly needs more memory than the
    limit.

    Raises:
        ConfigError: naming the key of the largest term (``circuit.topology[k]`` or a batch size),
            the estimate and the limit, and how to lower the one or raise the other.
    """
    if memory_limit() is None:  # no estimate to make
        return
    needed, key, detail = estimate(config, training)
    require_memory(needed, key, "circuit" if getattr(config, "circuit", None) is not None else "run", detail)


def check_diffusion(config: Any) -> None:
    """The pre-flight of a diffusion config: sampler step counts within
    `MAX_FIXED_STEPS`, and the score network's parameters and the
    (batch, width) activations of training and sampling within memory.

    The crossbar network is ``dim → width → width → dim`` (≈ width² weights); the score circuit has
    ``hidden × (dim·repeat + time_nodes)`` learnable edges. Activations are counted in float32.

    Raises:
        ConfigError: naming the key to change, the estimate and the limit.
    """
    for key, steps in (
        ("sample.steps", config.sample.steps),
        ("evaluate.robustness_steps", config.evaluate.robustness_steps),
        ("analog.steps", config.analog.steps),
    ):
        if steps > MAX_FIXED_STEPS:
            raise ConfigError(
                f"{key}: {steps:.3g} solver steps is more than the limit of {MAX_FIXED_STEPS:.0e}; lower {key}"
            )
    scalar, dim = 4, 2
    if config.model.kind == "kirchhoffnet":
        c = config.model
        if c.settle_steps > MAX_SETTLE_STEPS:  # every score evaluation relaxes the hidden nodes this often
            raise ConfigError(
                f"model.settle_steps: {c.settle_steps:.3g} relaxation steps per evaluation is more than the limit "
                f"of {MAX_SETTLE_STEPS:.0e}; a contraction settles to ρⁿ and Newton in a few steps, lower it"
            )
        width = c.hidden * (dim * c.repeat + c.time_nodes + config.num_classes)  # edges: one current each
        params = width * resolve(c.device).num_params
        width_key = "model.hidden"
    else:
        width = config.model.width
        params = width * width + 2 * width * (dim + 2)
        width_key = "model.width"
    terms = {  # (what, key): bytes; activations are (batch, width) per layer or (batch, edges)
        (f"{params:.3g} parameters", width_key): params * scalar * PARAMETER_COPIES,
        ("training activations", "train.batch_size"): config.train.batch_size * width * scalar * BATCH_BUFFERS,
        ("sampling activations", "evaluate.num_samples"): config.evaluate.num_samples * width * scalar * BATCH_BUFFERS,
        ("validation points", "score_matching.val_size"): config.score_matching.val_size
        * (dim * scalar * DATA_COPIES + width * scalar * BATCH_BUFFERS),
    }
    (_, key), _ = max(terms.items(), key=lambda item: item[1])
    detail = ", ".join(f"{name} {size / GB:.3g} GB" for (name, _), size in terms.items())
    remedy = f"lower {key}" if key == width_key else f"lower {key} or {width_key}"
    require_memory(float(sum(terms.values())), key, "run", f"({detail}; {remedy})")
