"""Writing a model's netlists to files, one per time slice, ready to run in any SPICE."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kirchhoffnet.io import write_text_atomic
from kirchhoffnet.solve import trajectory
from kirchhoffnet.spice.netlist import Realisation, SpiceOptions, as_circuit, slice_durations, slice_netlist
from kirchhoffnet.spice.verify import REFERENCE_SOLVER


def netlist_paths(path: str | os.PathLike[str], slices: int) -> list[Path]:
    """``path`` itself for one slice; ``<stem>.slice<k><suffix>`` for each of several."""
    target = Path(path)
    if slices == 1:
        return [target]
    return [target.with_name(f"{target.stem}.slice{k}{target.suffix or '.cir'}") for k in range(slices)]


def export_netlists(
    model: Any,
    x: Tensor,
    path: str | os.PathLike[str],
    options: SpiceOptions | None = None,
    realisation: Realisation | None = None,
) -> list[Path]:
    """Write the netlist of every slice of ``model`` for inputs ``x`` (replicated per sample).

    Slice 0 starts from the inputs. A later slice starts from the state kirchhoffnet hands over
    (its float64 solve at :data:`~kirchhoffnet.spice.verify.REFERENCE_SOLVER`), since a
    stand-alone netlist cannot read another run's result; :func:`kirchhoffnet.spice.verify`
    hands over ngspice's own state instead. Each file says in its title where its initial
    voltages come from.

    Args:
        model: a Circuit, Flow or Network.
        x: (K, d) inputs.
        path: the netlist file (one slice) or the pattern of the per-slice files (see :func:`netlist_paths`).
        options: ngspice settings written into each deck.
        realisation: how edges become elements; default behavioural current sources.

    Returns:
        The files written, in slice order.
    """
    circuit = copy.deepcopy(as_circuit(model)).to(torch.float64)
    options = options or SpiceOptions()
    inputs = x.detach().to(torch.float64).cpu()
    with torch.no_grad():
        waves, _ = trajectory(circuit, inputs, solver=REFERENCE_SOLVER, points_per_slice=2)
    paths = netlist_paths(path, circuit.num_slices)
    durations = slice_durations(circuit)
    for k, target in enumerate(paths):
        source = "the inputs" if k == 0 else f"kirchhoffnet's state at the end of slice {k - 1}"
        title = (
            f"kirchhoffnet slice {k} of {circuit.num_slices} (t = {circuit.times[k]:g}..{circuit.times[k + 1]:g} s), "
            f"{len(inputs)} sample(s); initial voltages from {source}"
        )
        deck = slice_netlist(circuit.slice(k), waves[k][1][0], durations[k], options, title, realisation)
        write_text_atomic(target, deck)
    return paths
