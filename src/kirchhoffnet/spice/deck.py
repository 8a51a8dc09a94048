"""Parameterised decks: one subcircuit per device family, the learned values in an include file.

A slice becomes three files in a simulator's [`Dialect`][kirchhoffnet.spice.Dialect]:

* the main deck: the family's subcircuit (its law written once, over parameter names), a
  ``kn_slice`` subcircuit holding the node capacitors and one instance per edge, one ``kn_slice``
  instance per sample, and the analysis;
* ``<stem>.params<inc>``: one parameter per line, ``c<n>`` the capacitance of node n in F and
  ``e<edge>_<name>`` each device parameter, written with ``repr`` so that they read back bit for bit;
* ``<stem>.ic<inc>``: each sample's initial node voltages.

Two comment lines carry what a deck cannot say in SPICE (the device family's settings, the slice's
times and the circuit's fill, residual and input nodes) as JSON, so that
[`kirchhoffnet.spice.importer.import_deck`][kirchhoffnet.spice.import_deck] rebuilds the circuit exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kirchhoffnet.circuit import Slice
from kirchhoffnet.devices import AffineActivation, Device
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.spice.dialect import Dialect
from kirchhoffnet.spice.netlist import (
    SpiceOptions,
    affine_family,
    affine_law,
    edge_parameters,
    initial_voltages,
    node_name,
)

SLICE_SUBCKT = "kn_slice"
DEVICE_DIRECTIVE = "kirchhoffnet device "
CIRCUIT_DIRECTIVE = "kirchhoffnet circuit "
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


def edge_parameter(edge: int, name: str) -> str:
    """The deck's parameter holding device parameter ``name`` of ``edge``."""
    return f"e{edge}_{name}"


def capacitance_parameter(node: int) -> str:
    return f"c{node}"


def family_subckt(device: Device, dialect: Dialect, name: str | None = None, *, gated: bool = False) -> list[str]:
    """The subcircuit ``<family> src dst <parameters>`` whose one behavioural source is the family's law.

    A coefficient that is not a bare parameter becomes a subcircuit-local parameter ``kn_<a|b|c|post>``,
    so the law stays one short readable line.

    Args:
        device: the device family.
        dialect: the simulator's spelling.
        name: the subcircuit's name; default the family's.
        gated: add a third port ``gate`` whose voltage (0 or 1) multiplies the law, so that a whole-network
            deck switches each slice's devices on and off (`kirchhoffnet.spice.network_deck`).
    """
    family = affine_family(device)
    subckt = name or family.name
    lines = dialect.subckt(subckt, ["src", "dst", "gate"] if gated else ["src", "dst"], family.param_names)
    derived, coefficients = local_coefficients(family)
    lines += [dialect.derived(local, expression) for local, expression in derived]
    used = [None if name is None else dialect.in_expression(name) for name in coefficients]
    law = affine_law(family, used, "v(src)", "v(dst)")
    if gated:
        law = f"v(gate)*{law}"
    return [*lines, dialect.current_source("device", "src", "dst", law), dialect.ends(subckt)]


def local_coefficients(family: AffineActivation) -> tuple[list[tuple[str, str]], list[str | None]]:
    """The family's ``(a, b, c, post)`` as names: a parameter's own, or a local ``kn_<label>`` defined by
    the returned ``(local, expression)`` pairs; ``None`` where the coefficient is absent."""
    names = family.param_names
    derived: list[tuple[str, str]] = []
    used: list[str | None] = []
    for label, expression in zip(("a", "b", "c", "post"), family.spice_coefficients(names), strict=True):
        if expression is not None and expression not in names:
            derived.append((f"kn_{label}", expression))
            expression = f"kn_{label}"
        used.append(expression)
    return derived, used


def slice_subckt(piece: Slice, dialect: Dialect) -> list[str]:
    """``kn_slice n1 .. nN``: the node capacitors and one family instance per edge, values by parameter name."""
    family = affine_family(piece.device_family)
    src, dst = piece.edge_index.tolist()
    ports = [node_name(n) for n in range(1, piece.num_nodes)]
    lines = dialect.subckt(SLICE_SUBCKT, ports, [])
    lines += [
        dialect.capacitor(str(n), node_name(n), dialect.reference(capacitance_parameter(n)))
        for n in range(1, piece.num_nodes)
    ]
    for e in range(piece.num_edges):
        values = [(p, dialect.reference(edge_parameter(e, p))) for p in family.param_names]
        lines.append(dialect.instance(str(e), [node_name(src[e]), node_name(dst[e])], family.name, values))
    return [*lines, dialect.ends(SLICE_SUBCKT)]


@dataclass(frozen=True)
class Deck:
    """The three texts of one slice's parameterised deck."""

    main: str
    parameters: str
    initial_conditions: str


def check_file_name(name: str) -> str:
    """An include file's name, refused unless every simulator reads it unquoted and in the deck's folder."""
    if not _FILE_NAME.fullmatch(name):
        raise ConfigError(
            f"deck file name {name!r} must be letters, digits and . _ + - only (it is written into an include line)"
        )
    return name


def parameterised_deck(
    piece: Slice,
    init: np.ndarray | torch.Tensor,
    duration: float,
    options: SpiceOptions,
    dialect: Dialect,
    *,
    title: str,
    files: tuple[str, str],
    circuit: dict[str, Any],
) -> Deck:
    """The parameterised deck of one slice for one or several samples.

    Args:
        piece: the slice.
        init: (K, N) initial node voltages in V, one row per sample.
        duration: the slice's duration in s.
        options: transient settings.
        dialect: the simulator's spelling.
        title: the deck's first (comment) line.
        files: the names of the parameter and initial-condition files, in the deck's folder.
        circuit: what the circuit-level directive records (times of this slice, fill, residual, input nodes).
    """
    start = initial_voltages(piece, init)
    params_file, ic_file = (check_file_name(name) for name in files)
    values = edge_parameters(piece).tolist()
    caps = piece.capacitance.detach().to(torch.float64).tolist()
    ports = range(1, piece.num_nodes)
    replicas = [f"_{k}" if len(start) > 1 else "" for k in range(len(start))]
    main = [
        dialect.comment(title),
        *dialect.preamble(),
        dialect.comment(CIRCUIT_DIRECTIVE + json.dumps(circuit)),
        dialect.comment(DEVICE_DIRECTIVE + json.dumps(piece.device_family.spec())),
        dialect.include(params_file),
        *family_subckt(piece.device_family, dialect),
        *slice_subckt(piece, dialect),
        *(
            dialect.instance(f"s{suffix}", [node_name(n, suffix) for n in ports], SLICE_SUBCKT, [])
            for suffix in replicas
        ),
        dialect.include(ic_file),
        *dialect.analysis(options, duration),
        *dialect.end(),
    ]
    parameters = [
        dialect.comment("learned values: c<n> node capacitance in F, e<edge>_<name> device parameters"),
        *dialect.preamble(),
        *(dialect.parameters([(capacitance_parameter(n), caps[n - 1])]) for n in ports),
        *(
            dialect.parameters([(edge_parameter(e, name), values[i][e])])
            for e in range(piece.num_edges)
            for i, name in enumerate(piece.device_family.param_names)
        ),
    ]
    initial = [dialect.comment("initial node voltages in V, one block per sample"), *dialect.preamble()]
    for suffix, row in zip(replicas, start, strict=True):
        initial += [dialect.initial_condition(node_name(n, suffix), float(row[n - 1])) for n in ports]
    return Deck(*("\n".join([*text, ""]) for text in (main, parameters, initial)))
