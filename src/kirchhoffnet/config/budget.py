"""The memory pre-flight: refuse a config whose circuit cannot fit in memory, before building it.

A config can be valid key by key and still absurd as a whole (``hidden_nodes: 1e9``, millions of
edges times a large batch); building it would hang or be killed by the kernel. The estimate counts
only what certainly has to exist, so it errs low: the parameters (with their gradients and Adam
moments when training), the edge lists, a few (batch, edges) tensors per differentiable
evaluation of the circuit's field, and the solver's copies of the state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kirchhoffnet.devices import resolve
from kirchhoffnet.errors import ConfigError

LIMIT_ENV = "KIRCHHOFFNET_MEMORY_GB"
"""Environment variable overriding the memory limit (in GB, 10^9 bytes); default: what is available."""
PARAMETER_COPIES = 4  # the parameters, their gradients, Adam's two moments
BATCH_BUFFERS = 3  # (B, E) tensors of a differentiable field evaluation: pre-activations, currents, slopes
INDEX_BYTES = 16  # a (2, E) int64 edge list
SOLVER_STATES = 8  # copies of the (N, B) state an adaptive step keeps: dopri5's 7 stages and the state
MIN_CHUNK_EDGES = 256  # inference evaluates the field over chunks of at least this many edges
GB = 1e9


def memory_limit() -> float | None:
    """Bytes a run may use: ``$KIRCHHOFFNET_MEMORY_GB``, else MemAvailable from /proc/meminfo, else None."""
    text = os.environ.get(LIMIT_ENV)
    if text is not None:
        try:
            limit = float(text)
        except ValueError:
            limit = float("nan")
        if not limit > 0 or limit == float("inf"):
            raise ConfigError(f"{LIMIT_ENV} must be a positive number of GB, got {text!r}")
        return limit * GB
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # not Linux: no check rather than a guess


def estimate(config: Any, training: bool = True) -> tuple[float, str, str]:
    """(bytes, the key of the largest term, its breakdown and remedy) for a run config's circuit;
    (0, "", "") without one.

    Args:
        training: count the optimiser's copies of the parameters and the (batch, edges) tensors of
            a differentiable field evaluation; otherwise only inference (chunked over the edges).
    """
    circuit = getattr(config, "circuit", None)
    if circuit is None:
        return 0.0, "", ""
    scalar = 8 if config.dtype == "float64" else 4
    topologies = circuit.slice_topologies()
    edges = [t.edge_count for t in topologies]
    widest = max(range(len(edges)), key=edges.__getitem__)
    topology_key = f"circuit.topology[{0 if len(circuit.topology) == 1 else widest}]"
    per_edge = resolve(circuit.device).num_params * scalar * (PARAMETER_COPIES if training else 1) + INDEX_BYTES
    eval_batch = config.train.eval_batch_size
    nodes = max(t.total_nodes for t in topologies)
    terms = {  # (what, the key to name, the remedy): bytes
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


def check_memory(config: Any, training: bool = True) -> None:
    """Raise :class:`ConfigError` if the run's circuit certainly needs more memory than the limit.

    Raises:
        ConfigError: naming the key of the largest term (``circuit.topology[k]`` or a batch size),
            the estimate and the limit, and how to lower the one or raise the other.
    """
    limit = memory_limit()
    if limit is None:
        return
    needed, key, detail = estimate(config, training)
    if needed > limit:
        raise ConfigError(
            f"{key}: the circuit needs at least {needed / GB:.3g} GB but {limit / GB:.3g} GB are available "
            f"{detail}, or set {LIMIT_ENV} if the estimate is wrong"
        )
