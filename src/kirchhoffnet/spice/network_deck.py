"""One transient deck for a whole multi-slice circuit, so a simulator reproduces the network's output alone.

Per-slice decks (`kirchhoffnet.spice.deck`) start each slice from kirchhoffnet's own state; this deck
runs every slice in one transient analysis from the inputs. Each family subcircuit multiplies its law by
``v(gate)``, and slice k's gate ``g<k>`` is a piecewise-linear voltage that is 1 during the slice and 0
outside it, switching over a ramp of ``RAMP`` × the largest time step centred on each boundary t_k:

* the PWL corners are breakpoints, so the simulator lands on both ends of every ramp;
* a centred ramp blends the two laws symmetrically about t_k, so the switch is at t_k to first order
  (an ideal step made ngspice's Newton iteration flip between the two laws at the boundary and stop with
  "timestep too small");
* only a PWL voltage source is needed, which every SPICE has; ngspice and LTspice are written.

Nodes keep their number from slice to slice, as `Circuit.resize` does. A node
that a slice drops and a later one brings back is a fresh SPICE node ``n<node>s<k>`` (k the slice it
comes back in) starting at 0 V, the ``zeros`` fill; until its slice no active device touches it. What
no circuit element represents is refused: residual connections (a sample-and-hold added to a later
state), ``fill="repeat"`` on a growing slice (a copy of another node's voltage at a time instant), and a
node whose capacitance changes between slices.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from kirchhoffnet.circuit import Circuit
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.spice.deck import Deck, check_file_name, family_subckt
from kirchhoffnet.spice.dialect import Dialect
from kirchhoffnet.spice.netlist import SpiceOptions, affine_family, edge_parameters, slice_durations

NETWORK_SUBCKT = "kn_network"
RAMP = 1e-3
"""Width of a gate's switch between slices, as a fraction of the largest time step: far above ngspice's
smallest breakpoint spacing (5e-5 of it) and far below the step, so it costs two short steps per boundary."""
NETWORK_DIRECTIVE = "kirchhoffnet network "


@dataclass(frozen=True)
class NetworkLayout:
    """Which SPICE node holds each state node of each slice.

    Attributes:
        nodes: ``nodes[k][n - 1]`` is the SPICE name of state node n during slice k.
        capacitance: each SPICE node's capacitance in F, in order of first use.
    """

    nodes: list[list[str]]
    capacitance: dict[str, float]

    @property
    def all_nodes(self) -> list[str]:
        return list(self.capacitance)


def network_layout(circuit: Circuit) -> NetworkLayout:
    """The SPICE node of every (slice, state node), refusing what a single deck cannot represent."""
    if circuit.residual is not None:
        raise ConfigError(
            f"residual {circuit.residual} adds one slice's end state to a later one's, which no circuit element "
            "represents; export this circuit per slice (without --whole-network)"
        )
    widths = circuit.widths
    if circuit.fill == "repeat" and any(widths[k] > widths[k - 1] for k in range(1, len(widths))):
        raise ConfigError(
            "fill='repeat' starts a growing slice's new nodes at copies of other nodes' voltages, which no circuit "
            "element represents; export this circuit per slice (without --whole-network)"
        )
    nodes: list[list[str]] = []
    capacitance: dict[str, float] = {}
    for k, width in enumerate(widths):
        caps = circuit.slice(k).capacitance.detach().to(torch.float64).tolist()
        names = []
        for n in range(1, width + 1):
            kept = k > 0 and n <= widths[k - 1]
            name = nodes[k - 1][n - 1] if kept else (f"n{n}" if k == 0 else f"n{n}s{k}")
            if capacitance.setdefault(name, caps[n - 1]) != caps[n - 1]:
                raise ConfigError(
                    f"node {n} has capacitance {capacitance[name]!r} before slice {k} and {caps[n - 1]!r} in it; "
                    "a capacitor cannot change value, so export this circuit per slice (without --whole-network)"
                )
            names.append(name)
        nodes.append(names)
    return NetworkLayout(nodes, capacitance)


def gate_corners(k: int, times: list[float], ramp: float) -> list[tuple[float, float]]:
    """Slice k's gate as PWL ``(t, v)`` corners over the run ``times`` (from 0): 1 within the slice, 0 outside,
    ramps of width ``ramp`` centred on its boundaries."""
    half = ramp / 2
    corners = [(0.0, 1.0 if k == 0 else 0.0)]
    if k > 0:
        corners += [(times[k] - half, 0.0), (times[k] + half, 1.0)]
    if k < len(times) - 2:
        corners += [(times[k + 1] - half, 1.0), (times[k + 1] + half, 0.0)]
    return [*corners, (times[-1], corners[-1][1])]


def network_analysis(circuit: Circuit, options: SpiceOptions) -> tuple[SpiceOptions, float]:
    """Settings over the whole run whose print and largest steps are those of the shortest slice's own deck,
    and the run's duration in s."""
    durations = slice_durations(circuit)
    total = circuit.times[-1] - circuit.times[0]
    print_step = min(options.steps(d)[0] for d in durations)
    max_step = min(options.steps(d)[1] for d in durations)
    points = math.ceil(total / print_step * (1 - 1e-12)) + 1
    return replace(options, points=points, max_step_fraction=min(1.0, max_step / total)), total


def _family_names(circuit: Circuit) -> list[str]:
    """Each slice's family subcircuit name: the family's own, numbered when two slices' settings differ."""
    specs: dict[str, str] = {}
    names = []
    for k in range(circuit.num_slices):
        device = affine_family(circuit.slice(k).device_family)
        key = json.dumps(device.spec(), sort_keys=True)
        taken = sum(1 for other in specs if json.loads(other)["name"] == device.name)
        names.append(specs.setdefault(key, device.name if taken == 0 else f"{device.name}_{taken}"))
    return names


def network_deck(
    circuit: Circuit,
    init: np.ndarray,
    options: SpiceOptions,
    dialect: Dialect,
    *,
    outputs: list[int],
    title: str,
    files: tuple[str, str],
) -> Deck:
    """The whole circuit as one parameterised transient deck, for one or several samples.

    Args:
        circuit: a float64 circuit.
        init: (K, N0) initial node voltages of slice 0 in V, one row per sample.
        options: transient settings; the steps of each slice are at least as fine as in its own deck.
        dialect: the simulator's spelling.
        outputs: the final state nodes (0-based) read out at the end as ``out<i>`` measurements.
        title: the deck's first (comment) line.
        files: the names of the parameter and initial-condition files, in the deck's folder.
    """
    layout = network_layout(circuit)
    params_file, ic_file = (check_file_name(name) for name in files)
    if init.ndim != 2 or init.shape[1] != circuit.widths[0] or not np.isfinite(init).all():
        raise ConfigError(
            f"initial voltages must be finite with shape (samples, {circuit.widths[0]}), got {init.shape}"
        )
    slices = circuit.num_slices
    families = _family_names(circuit)
    gates = [f"g{k}" for k in range(slices)]
    replicas = [f"_{s}" if len(init) > 1 else "" for s in range(len(init))]
    settings, total = network_analysis(circuit, options)
    times = [t - circuit.times[0] for t in circuit.times]
    final = layout.nodes[-1]
    record = {
        "slices": slices,
        "times_s": list(circuit.times),
        "widths": list(circuit.widths),
        "outputs": {f"out{i}": final[n] for i, n in enumerate(outputs)},
    }
    main = [
        dialect.comment(title),
        *dialect.preamble(),
        dialect.comment(NETWORK_DIRECTIVE + json.dumps(record)),
        dialect.include(params_file),
    ]
    for k, name in enumerate(families):
        if name not in families[:k]:
            main += family_subckt(circuit.slice(k).device_family, dialect, name, gated=True)
    main += _network_subckt(circuit, layout, families, gates, dialect)
    ramp = RAMP * settings.steps(total)[1]
    main += [dialect.piecewise_linear(f"gate{k}", g, gate_corners(k, times, ramp)) for k, g in enumerate(gates)]
    main += [
        dialect.instance(f"net{suffix}", [*(f"{n}{suffix}" for n in layout.all_nodes), *gates], NETWORK_SUBCKT, [])
        for suffix in replicas
    ]
    main += [dialect.include(ic_file), *dialect.analysis(settings, total)]
    main += [
        dialect.measure(f"out{i}{suffix}", f"{final[n]}{suffix}", total)
        for suffix in replicas
        for i, n in enumerate(outputs)
    ]
    main += dialect.end()
    parameters = [
        dialect.comment("learned values: c_<node> node capacitance in F, s<slice>_e<edge>_<name> device parameters"),
        *dialect.preamble(),
        *(dialect.parameters([(f"c_{node}", cap)]) for node, cap in layout.capacitance.items()),
    ]
    for k in range(slices):
        piece = circuit.slice(k)
        values = edge_parameters(piece).tolist()
        parameters += [
            dialect.parameters([(f"s{k}_e{e}_{name}", values[i][e])])
            for e in range(piece.num_edges)
            for i, name in enumerate(piece.device_family.param_names)
        ]
    initial = [dialect.comment("initial node voltages in V at t = 0, one block per sample"), *dialect.preamble()]
    for suffix, row in zip(replicas, init, strict=True):
        start = dict(zip(layout.nodes[0], row.tolist(), strict=True))
        initial += [dialect.initial_condition(f"{n}{suffix}", start.get(n, 0.0)) for n in layout.all_nodes]
    return Deck(*("\n".join([*text, ""]) for text in (main, parameters, initial)))


def _network_subckt(
    circuit: Circuit, layout: NetworkLayout, families: list[str], gates: list[str], dialect: Dialect
) -> list[str]:
    """``kn_network <nodes> <gates>``: every node's capacitor and every slice's edges, each on its slice's gate."""
    lines = dialect.subckt(NETWORK_SUBCKT, [*layout.all_nodes, *gates], [])
    lines += [dialect.capacitor(f"_{n}", n, dialect.reference(f"c_{n}")) for n in layout.capacitance]
    for k in range(circuit.num_slices):
        piece = circuit.slice(k)
        src, dst = piece.edge_index.tolist()
        names = ["0", *layout.nodes[k]]
        params = piece.device_family.param_names
        for e in range(piece.num_edges):
            values = [(p, dialect.reference(f"s{k}_e{e}_{p}")) for p in params]
            lines.append(dialect.instance(f"s{k}e{e}", [names[src[e]], names[dst[e]], gates[k]], families[k], values))
    return [*lines, dialect.ends(NETWORK_SUBCKT)]


def readout_nodes(model: Any, width: int) -> list[int]:
    """The final state nodes (0-based) a model's readout takes: ``firstK``/``lastK`` theirs, otherwise all
    (a linear readout is a digital layer applied to all of them afterwards)."""
    readout = getattr(model, "readout", None)
    spec = readout.spec() if readout is not None and hasattr(readout, "spec") else {}
    k = min(int(spec.get("k", width)), width)
    if spec.get("name") == "first":
        return list(range(k))
    if spec.get("name") == "last":
        return list(range(width - k, width))
    return list(range(width))
