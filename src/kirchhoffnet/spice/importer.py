"""Reading a parameterised ngspice deck back into a [`Circuit`][kirchhoffnet.Circuit].

The deck is the one [`kirchhoffnet.spice.export.export_decks`][kirchhoffnet.spice.export_decks] writes in the
``ngspice`` dialect, possibly edited by hand: a ``.param`` value changed, a device line removed, a capacitance changed.
Only what a circuit can be is accepted: the family subcircuit exactly as kirchhoffnet writes it,
capacitors and family instances inside ``kn_slice``, plain numbers. Anything else (another element,
another subcircuit, an expression, a malformed line, a file past the size bound) is refused with one
line naming the file and line, and every value is checked before a tensor is built.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kirchhoffnet._textfile import read_text
from kirchhoffnet.circuit import Circuit, Encoding, Slice
from kirchhoffnet.devices import Device, resolve
from kirchhoffnet.errors import ConfigError, KirchhoffError
from kirchhoffnet.spice.deck import (
    CIRCUIT_DIRECTIVE,
    DEVICE_DIRECTIVE,
    SLICE_SUBCKT,
    check_file_name,
    family_subckt,
)
from kirchhoffnet.spice.dialect import Dialect

MAX_DECK_BYTES = 16 << 20  # per file: a million-edge slice's parameters fit in a few tens of MB at most
MAX_INCLUDES = 8
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_NODE = re.compile(r"0|n([1-9]\d*)")
_REFERENCE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_ASSIGNMENT = re.compile(r"([a-z_][a-z0-9_]*)=(\S+)")
_IC = re.compile(r"v\((n[1-9]\d*(_\d+)?)\)=(\S+)")


@dataclass(frozen=True)
class Line:
    """One logical deck line (continuations joined), lower case, with where it came from."""

    path: Path
    number: int
    text: str

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{self.number}: {message}")


@dataclass
class _Deck:
    """What one deck says, before it is checked against itself and turned into tensors."""

    params: dict[str, tuple[float, Line]] = field(default_factory=dict)
    directives: dict[str, tuple[Any, Line]] = field(default_factory=dict)
    subckts: dict[str, list[Line]] = field(default_factory=dict)
    duration: float | None = None
    includes: int = 0


def _logical_lines(path: Path) -> list[Line]:
    text = read_text(path, error=ConfigError, label="SPICE deck", limit=MAX_DECK_BYTES)
    lines: list[Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("+") and lines:
            lines[-1] = Line(path, lines[-1].number, f"{lines[-1].text} {stripped[1:].strip()}")
        elif stripped:
            lines.append(Line(path, number, stripped if stripped.startswith("*") else stripped.lower()))
    return lines


def _number(text: str, line: Line, what: str) -> float:
    """A plain finite number (no scale suffix, no expression)."""
    if not _NUMBER.fullmatch(text):
        raise line.error(f"{what} must be a plain number, got {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise line.error(f"{what} is {text}, not a finite number")
    return value


def _read(path: Path, deck: _Deck, top: bool) -> None:
    lines = _logical_lines(path)
    if top:
        lines = lines[1:]  # SPICE reads the first line as the title, whatever it says
    body: list[Line] | None = None
    for line in lines:
        if line.text.startswith("*"):
            _directive(line, deck)
            continue
        words = line.text.split()
        if body is not None:
            if words[0] == ".ends":
                body = None
            else:
                body.append(line)
            continue
        keyword = words[0]
        if keyword == ".end":
            return
        if keyword == ".include" and top:
            _include(line, words, deck)
        elif keyword == ".param":
            _parameters(line, words[1:], deck)
        elif keyword == ".ic":
            for word in words[1:]:
                if not _IC.fullmatch(word):
                    raise line.error(f"an initial condition is v(<node>)=<volts>, got {word!r}")
                _number(word.split("=", 1)[1], line, "an initial voltage")
        elif keyword == ".subckt" and top:
            if len(words) < 2 or words[1] in deck.subckts:
                raise line.error("a .subckt needs a name not used before")
            body = deck.subckts[words[1]] = [line]
        elif keyword == ".tran" and top:
            if len(words) < 3:
                raise line.error(".tran needs a step and a stop time")
            deck.duration = _number(words[2], line, "the .tran stop time")
            if deck.duration <= 0:
                raise line.error(f"the .tran stop time must be positive, got {words[2]}")
        elif keyword == ".options" and top:
            continue  # tolerances say nothing of the circuit
        elif keyword.startswith("x") and top:
            if words[-1] != SLICE_SUBCKT:  # a sample's replica of the slice, and nothing else
                raise line.error(f"an instance at the top of the deck must be of {SLICE_SUBCKT}, got {words[-1]!r}")
        else:
            raise line.error(
                f"{keyword!r} is not a statement a kirchhoffnet deck holds{'' if top else ' in an include file'}"
            )
    if body is not None:
        raise body[0].error(f"subcircuit {body[0].text.split()[1]} has no .ends")


def _directive(line: Line, deck: _Deck) -> None:
    for name in (DEVICE_DIRECTIVE, CIRCUIT_DIRECTIVE):
        if line.text.startswith(f"* {name}"):
            try:
                deck.directives[name] = (json.loads(line.text[len(name) + 2 :]), line)
            except ValueError as exc:
                raise line.error(f"the '{name.strip()}' comment is not valid JSON ({exc})") from None


def _include(line: Line, words: list[str], deck: _Deck) -> None:
    deck.includes += 1
    if len(words) != 2 or deck.includes > MAX_INCLUDES:
        raise line.error(f".include takes one file name, at most {MAX_INCLUDES} times")
    try:
        name = check_file_name(words[1])
    except ConfigError as exc:
        raise line.error(str(exc)) from None
    target = line.path.with_name(name)
    if not target.is_file():
        raise line.error(f"included file {name} not found beside the deck")
    _read(target, deck, top=False)


def _parameters(line: Line, words: list[str], deck: _Deck) -> None:
    for word in words:
        match = _ASSIGNMENT.fullmatch(word)
        if match is None:
            raise line.error(f"a .param assignment is <name>=<number>, got {word!r}")
        name, text = match.groups()
        if name in deck.params:
            raise line.error(f"parameter {name} is defined twice (first at line {deck.params[name][1].number})")
        deck.params[name] = (_number(text, line, f"parameter {name}"), line)


def _value(text: str, line: Line, deck: _Deck) -> float:
    """An element value: ``{name}`` of a ``.param`` or a plain number."""
    match = _REFERENCE.fullmatch(text)
    if match is None:
        return _number(text, line, "a value")
    if match[1] not in deck.params:
        raise line.error(f"parameter {match[1]} is not defined by any .param")
    return deck.params[match[1]][0]


def _family(deck: _Deck) -> Device:
    """The device family, from the device comment, else the one family subcircuit's name."""
    families = [name for name in deck.subckts if name != SLICE_SUBCKT]
    if len(families) != 1:
        raise ConfigError(f"a deck defines exactly one device-family subcircuit besides {SLICE_SUBCKT}, got {families}")
    header = deck.subckts[families[0]][0]
    spec, where = deck.directives.get(DEVICE_DIRECTIVE, (families[0], header))
    try:
        family = resolve(spec)
    except KirchhoffError as exc:
        raise where.error(f"unknown device family: {exc}") from None
    written = [" ".join(line.split()).lower() for line in family_subckt(family, Dialect())]
    found = [line.text for line in deck.subckts[families[0]]] + [f".ends {families[0]}"]
    for k, expected in enumerate(written):
        if k >= len(found) or " ".join(found[k].split()) != expected:
            where = deck.subckts[families[0]][min(k, len(found) - 2)]
            raise where.error(
                f"subcircuit {families[0]} differs from the {family.name} law kirchhoffnet writes: {expected!r}"
            )
    return family


def _slice(deck: _Deck, family: Device) -> Slice:
    if SLICE_SUBCKT not in deck.subckts:
        raise ConfigError(f"the deck has no {SLICE_SUBCKT} subcircuit")
    header, *body = deck.subckts[SLICE_SUBCKT]
    ports = header.text.split()[2:]
    if ports != [f"n{n}" for n in range(1, len(ports) + 1)] or not ports:
        raise header.error(f"{SLICE_SUBCKT}'s ports must be n1 n2 ... nN")
    caps: dict[int, float] = {}
    edges: list[tuple[int, int]] = []
    values: list[list[float]] = []
    for line in body:
        words = line.text.split()
        if words[0].startswith("c"):
            node = _node(words[1], line, len(ports))
            if len(words) != 4 or words[2] != "0" or words[0] != f"c{node}" or node in caps:
                raise line.error(f"a node capacitor is 'C<n> n<n> 0 <farads>', once per node, got {line.text!r}")
            caps[node] = _value(words[3], line, deck)
            if caps[node] <= 0:
                raise line.error(f"the capacitance of node {node} must be positive, got {caps[node]}")
        elif words[0].startswith("x") and len(words) >= 4 and words[3] == family.name.lower():
            edges.append((_node(words[1], line, len(ports)), _node(words[2], line, len(ports))))
            values.append(_instance_values(words[4:], line, deck, family))
        else:
            raise line.error(
                f"{SLICE_SUBCKT} holds only node capacitors and {family.name} instances, got {line.text!r}"
            )
    missing = sorted(set(range(1, len(ports) + 1)) - set(caps))
    if missing:
        raise header.error(f"node n{missing[0]} has no capacitor")
    if not edges:
        raise header.error(f"{SLICE_SUBCKT} has no {family.name} instance: a slice needs at least one edge")
    params = torch.tensor(values, dtype=torch.float64).T.contiguous()
    capacitance = torch.tensor([caps[n] for n in range(1, len(ports) + 1)], dtype=torch.float64)
    try:
        return Slice(torch.tensor(edges).T, family, num_nodes=len(ports) + 1, capacitance=capacitance, params=params)
    except KirchhoffError as exc:
        raise header.error(str(exc)) from None


def _node(text: str, line: Line, count: int) -> int:
    match = _NODE.fullmatch(text)
    node = 0 if text == "0" else int(match[1]) if match else -1
    if not 0 <= node <= count:
        raise line.error(f"node {text!r} is not 0 or one of {SLICE_SUBCKT}'s ports n1..n{count}")
    return node


def _instance_values(words: list[str], line: Line, deck: _Deck, family: Device) -> list[float]:
    given = dict(word.partition("=")[::2] for word in words)
    if sorted(given) != sorted(family.param_names) or len(given) != len(words):
        raise line.error(f"a {family.name} instance sets {', '.join(family.param_names)} once each, got {words}")
    return [_value(given[name], line, deck) for name in family.param_names]


def _read_deck(path: Path) -> tuple[Slice, tuple[float, float], dict[str, Any]]:
    deck = _Deck()
    _read(path, deck, top=True)
    if deck.duration is None:
        raise ConfigError(f"{path}: the deck has no .tran line, so the slice's duration is unknown")
    where = f"{path}: "
    try:
        piece = _slice(deck, _family(deck))
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(str(path)) else where + str(exc)) from None
    record, line = deck.directives.get(CIRCUIT_DIRECTIVE, ({}, None))
    layout = _layout(record)
    if layout is None:
        message = (
            "the circuit comment must be a JSON object: times_s two numbers, fill a string, "
            "residual and input_nodes lists of integers or null"
        )
        raise line.error(message) if line else ConfigError(where + message)
    start, stop = layout.pop("times_s", [0.0, deck.duration])
    if stop - start != deck.duration:  # .tran edited by hand: its stop time is the duration
        stop = start + deck.duration
    return piece, (start, stop), layout


def _layout(record: Any) -> dict[str, Any] | None:
    """The circuit comment's times and layout, or ``None`` when any of them has the wrong type."""
    if not isinstance(record, dict):
        return None
    layout = {key: record.get(key) for key in ("fill", "residual", "input_nodes", "encoding")}
    numbers = record.get("times_s", [0.0, 1.0])
    integer_lists = all(
        value is None or (isinstance(value, list) and all(type(v) is int for v in value))
        for value in (layout["residual"], layout["input_nodes"])
    )
    if not (
        integer_lists
        and isinstance(layout["fill"], (str, type(None)))
        and isinstance(numbers, list)
        and len(numbers) == 2
        and all(type(t) in (int, float) for t in numbers)
    ):
        return None
    if "times_s" in record:
        layout["times_s"] = [float(t) for t in numbers]
    return layout


def import_deck(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Circuit:
    """The circuit of a parameterised ngspice deck (one slice), or of several decks (slices in order).

    Args:
        paths: a main deck written by ``kirchhoffnet spice export --dialect ngspice --parameterised``,
            or the decks of every slice; their include files are read from beside them.

    Raises:
        ConfigError: naming the file and line of anything a circuit cannot be.
    """
    decks = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not decks:
        raise ConfigError("import_deck needs at least one deck")
    read = [_read_deck(path) for path in decks]
    times = [read[0][1][0]]
    for path, (_, (start, stop), layout) in zip(decks, read, strict=True):
        if start != times[-1] or layout != read[0][2]:
            raise ConfigError(f"{path}: the slice does not follow the previous deck (its times or layout differ)")
        times.append(stop)
    layout = read[0][2]
    try:
        return Circuit(
            [piece for piece, _, _ in read],
            times=times,
            fill=layout["fill"] or "zeros",
            residual=layout["residual"],
            input_nodes=layout["input_nodes"],
            encoding=Encoding.from_spec(layout["encoding"]),
        )
    except KirchhoffError as exc:
        raise ConfigError(f"{decks[0]}: {exc}") from None
