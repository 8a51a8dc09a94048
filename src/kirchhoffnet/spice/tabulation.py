"""Tabulating a transistor's drain current in ngspice into a [`TransistorTable`][kirchhoffnet.devices.TransistorTable].

The edge circuit (`kirchhoffnet.spice.mos`) holds an NMOS's drain at ``V_DS`` and its source at
ground (a PMOS's source and bulk at the supply, its drain ``V_DS`` below), so at a given width its current
is a function of the gate drive ``V_GS`` (a PMOS's ``V_SG``) alone. One DC sweep of the card's
transistor at the reference width (``squares`` × L) over ``V_GS ∈ [0, 2·supply]`` (the gate voltages that a
bias within the supply and a drop within the rails make) gives that function; a
non-negative least-squares fit of the spline's knot slopes (the transconductance, so the current is
monotone by construction) turns it into the family's table, in units of the current at
``V_GS = supply``. The fit is then checked against a fresh sweep: other ``V_GS`` points, and other
widths drawn in the width limits, where the family assumes the current scales with the effective
width ``W − ΔW`` (ΔW fitted from the narrowest width's current).

Tabulations are cached on disk, keyed by the SHA-256 of everything they depend on (card text, model
name, V_DS, L, supply and the fit settings), under ``$KIRCHHOFFNET_CACHE`` or
``$XDG_CACHE_HOME/kirchhoffnet`` (``~/.cache/kirchhoffnet``); a cache file that does not parse,
belongs to another key or does not rebuild the family is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import nnls

from kirchhoffnet._textfile import read_json_mapping
from kirchhoffnet.devices import TransistorTable, resolve
from kirchhoffnet.errors import ConfigError, DeviceError, KirchhoffError, shown
from kirchhoffnet.io import write_json_atomic
from kirchhoffnet.spice._runner import run_ngspice
from kirchhoffnet.spice.model_cards import ModelCard, Transistor, load_card

CACHE_FORMAT = 1
_MAX_CACHE_BYTES = 1 << 20


@dataclass(frozen=True)
class Tabulation:
    """A fitted transistor family and how well it fits.

    Attributes:
        device: the family, ready for circuits and configs.
        report: the fit's figures (errors in % of the current range, against fresh sweeps), its
            settings and the current unit in A.
    """

    device: TransistorTable
    report: dict[str, Any]


def cache_dir() -> Path:
    """Where tabulations are cached: ``$KIRCHHOFFNET_CACHE``, else ``$XDG_CACHE_HOME/kirchhoffnet``,
    else ``~/.cache/kirchhoffnet``."""
    if os.environ.get("KIRCHHOFFNET_CACHE"):
        return Path(os.environ["KIRCHHOFFNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kirchhoffnet"


def tabulate(
    card: ModelCard | str | os.PathLike[str],
    *,
    model_name: str | None = None,
    transistor: Transistor = "nmos",
    drain_voltage_v: float = 0.1,
    length_m: float | None = None,
    supply_v: float | None = None,
    squares: float = 10.0,
    knots: int = 65,
    width_range: tuple[float, float] = (0.25, 4.0),
    check_widths: int = 6,
    cache: bool = True,
) -> Tabulation:
    """Sweep the card's NMOS or PMOS in ngspice, fit the family, check the fit against fresh sweeps.

    Args:
        card: a [`ModelCard`][kirchhoffnet.spice.ModelCard] (its own transistor type), a shipped card's name
            or a card file.
        model_name: the model in a card given by name or path (default: the card's first of that type).
        transistor: ``nmos`` or ``pmos``, for a card given by name or path (a shipped name has both).
        drain_voltage_v: V_DS (a PMOS's V_SD) of every edge transistor.
        length_m: channel length (default: the shipped card's; 1 µm for other cards).
        supply_v: the supply, the range of the gate bias (default: the shipped card's; 1.8 V).
        squares: the reference width W_ref in units of L; the family's width is in units of W_ref.
        knots: knots of the spline over ``V_GS ∈ [0, 2·supply]``.
        width_range: the widths a transistor may have, in units of W_ref (the family's clamps).
        check_widths: widths drawn (log-uniformly, seeded) in ``width_range`` for the check.
        cache: read and write the on-disk cache.
    """
    card = card if isinstance(card, ModelCard) else load_card(card, model_name, transistor)
    settings = _settings(card, drain_voltage_v, length_m, supply_v, squares, knots, width_range, check_widths)
    key = hashlib.sha256(json.dumps({"card": card.text, **settings}, sort_keys=True).encode()).hexdigest()
    path = cache_dir() / "tabulations" / f"{key}.json"
    if cache:
        cached = _read_cache(path, key)
        if cached is not None:
            return cached
    result = _fit(card, settings)
    if cache:
        try:
            write_json_atomic(path, {"format": CACHE_FORMAT, "key": key, **_as_json(result)})
        except (OSError, KirchhoffError) as exc:  # a read-only or full cache only costs the next call a sweep
            warnings.warn(f"tabulation not cached in {path.parent}: {exc}", stacklevel=2)
    return result


def _settings(
    card: ModelCard,
    drain_voltage_v: float,
    length_m: float | None,
    supply_v: float | None,
    squares: float,
    knots: int,
    width_range: tuple[float, float],
    check_widths: int,
) -> dict[str, Any]:
    """The fit's settings, checked, defaults filled in from the card: the cache key and the report hold them."""
    length = _positive("length_m", length_m if length_m is not None else card.length_m or 1e-6)
    supply = _positive("supply_v", supply_v if supply_v is not None else card.supply_v or 1.8)
    drain = _positive("drain_voltage_v", drain_voltage_v)
    if not drain < supply:
        raise ConfigError(f"drain_voltage_v ({drain} V) must lie below the supply ({supply} V)")
    try:
        low, high = (float(w) for w in width_range)
        knots, check_widths = operator.index(knots), operator.index(check_widths)
    except (TypeError, ValueError):
        raise ConfigError(
            f"width_range must be two numbers and knots, check_widths integers; got {shown(width_range)}, "
            f"{shown(knots)} and {shown(check_widths)}"
        ) from None
    if not 3 <= knots <= 1000 or not 0 <= check_widths <= 100:
        raise ConfigError(f"knots must lie in [3, 1000] and check_widths in [0, 100], got {knots} and {check_widths}")
    if not 0 < low <= 1 <= high < math.inf:
        raise ConfigError(f"width_range must hold the reference width 1: 0 < low <= 1 <= high, got {width_range}")
    return {
        "model_name": card.model_name,
        "transistor": card.transistor,
        "drain_voltage_v": drain,
        "length_m": length,
        "supply_v": supply,
        "gate_max_v": 2 * supply,
        "squares": _positive("squares", squares),
        "knots": knots,
        "width_range": [low, high],
        "check_widths": check_widths,
    }


def _positive(name: str, value: Any) -> float:
    """``value`` as a finite positive float, or a one-line ConfigError naming the setting."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"{name} must be a positive number, got {shown(value)}")
    return number


def gate_sweep(
    card_text: str,
    model_name: str,
    drain_voltage_v: float,
    length_m: float,
    widths_m: list[float],
    gate_max_v: float,
    points: int,
    transistor: Transistor = "nmos",
    supply_v: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The gate drive (P,) from 0 to ``gate_max_v`` and the drain currents (P, W) in A of one transistor per width,
    its drain held ``drain_voltage_v`` from its source, in one ngspice run: the sweep every transistor
    characterisation reads. An NMOS has source and bulk at ground and the drive is V_GS; a PMOS has source and
    bulk at ``supply_v`` and the drive is V_SG, the current the one flowing out of its drain."""
    pmos = transistor == "pmos"
    source = "s" if pmos else "0"
    lines = ["* kirchhoffnet transistor sweep", card_text]
    lines += [f"Vs s 0 {supply_v!r}", "Vg s g 0"] if pmos else ["Vg g 0 0"]
    for k, width in enumerate(widths_m):
        drain = f"Vd{k} s d{k}" if pmos else f"Vd{k} d{k} 0"
        device = f"M{k} d{k} g {source} {source} {model_name} W={width!r} L={length_m!r}"
        lines += [f"{drain} {drain_voltage_v!r}", device]
    lines += [f".dc Vg 0 {gate_max_v!r} {gate_max_v / (points - 1)!r}", ".end", ""]
    plot = run_ngspice("\n".join(lines)).plot("dc")
    currents = np.stack([-plot[f"i(vd{k})"] for k in range(len(widths_m))], axis=1)
    drive = plot["v(s)"] - plot["v(g)"] if pmos else plot["v(g)"]
    return drive, currents


def _sweep(card: ModelCard, settings: dict[str, Any], widths_m: list[float], points: int) -> tuple[np.ndarray, ...]:
    """`gate_sweep` of the card at the tabulation's drain bias, length and gate range."""
    return gate_sweep(
        card.text,
        card.model_name,
        settings["drain_voltage_v"],
        settings["length_m"],
        widths_m,
        settings["gate_max_v"],
        points,
        settings["transistor"],
        settings["supply_v"],
    )


def _fit(card: ModelCard, settings: dict[str, Any]) -> Tabulation:
    start = time.perf_counter()
    supply, gate_max, knots = settings["supply_v"], settings["gate_max_v"], settings["knots"]
    reference_m = settings["squares"] * settings["length_m"]
    low, high = settings["width_range"]
    gate, current = _sweep(card, settings, [reference_m, low * reference_m], 8 * (knots - 1) + 1)
    unit_a = float(np.interp(supply, gate, current[:, 0]))
    if not unit_a > 1e-9:  # leakage and gmin alone stay far below a nanoampere
        raise DeviceError(
            f"the transistor {card.model_name} conducts no current ({unit_a:.2g} A) at V_GS = supply = {supply} V; "
            "check the model card, its threshold and the supply"
        )
    # σ is linear in the knot slopes s_1..s_N (s_0 = 0): column j is σ with s = e_j, a hat's integral.
    u = torch.from_numpy(gate)
    columns = [
        TransistorTable([float(i == j) for i in range(knots)], supply, gate_max).activation(u, inplace=False).numpy()
        for j in range(1, knots)
    ]
    slopes, _ = nnls(np.stack(columns, axis=1), current[:, 0] / unit_a)
    # The current scales with the effective width W − ΔW (BSIM's 2·WINT and the like), not W: ΔW from
    # the narrowest width's current relative to the reference's, at the supply.
    ratio = float(np.interp(supply, gate, current[:, 1])) / unit_a
    offset_m = (ratio * reference_m - low * reference_m) / (ratio - 1) if low < 1 and ratio != 1 else 0.0
    if not -reference_m < offset_m < low * reference_m:
        raise DeviceError(
            f"the transistor {card.model_name}'s current is not near-linear in its width: {ratio:.3g} of the "
            f"reference current at {low} of its width; check the card or narrow width_range"
        )
    source = {
        "card_sha256": card_sha256(card),
        "card": card.name,
        "model_name": card.model_name,
        "transistor": card.transistor,
        "drain_voltage_v": settings["drain_voltage_v"],
        "length_m": settings["length_m"],
        "reference_width_m": reference_m,
        "width_offset_m": offset_m,
        "current_unit_a": unit_a,
    }
    device = TransistorTable([0.0, *slopes.tolist()], supply, gate_max, low, high, source)
    return Tabulation(device, {**source, **_check(card, settings, device), "tabulation_s": time.perf_counter() - start})


def _check(card: ModelCard, settings: dict[str, Any], device: TransistorTable) -> dict[str, Any]:
    """The fit against a fresh sweep at other V_GS points, at the reference width and at drawn widths.

    Errors are max |ngspice − family| over V_GS in % of that width's current range, the family's
    current at width w being ``w·σ(V_GS)``.
    """
    low, high = settings["width_range"]
    drawn = np.exp(np.random.default_rng(0).uniform(math.log(low), math.log(high), settings["check_widths"]))
    ratios = [1.0, low, high, *drawn.tolist()]
    widths = [physical_width(device, r) for r in ratios]
    gate, current = _sweep(card, settings, widths, 7 * (settings["knots"] - 1) + 2)
    unit_a = device.source["current_unit_a"]
    with torch.no_grad():
        sigma = device.activation(torch.from_numpy(gate), inplace=False).numpy()
    errors = []
    for k, ratio in enumerate(ratios):
        measured = current[:, k] / unit_a
        errors.append(float(np.abs(measured - ratio * sigma).max() / np.ptp(measured) * 100))
    reference = current[:, 0] / unit_a
    return {
        "supply_v": settings["supply_v"],
        "knots": settings["knots"],
        "check_points": len(gate),
        "fit_error_pct": errors[0],
        "fit_rms_pct": float(np.sqrt(np.mean((reference - sigma) ** 2)) / np.ptp(reference) * 100),
        "width_ratios": ratios[1:],
        "width_errors_pct": errors[1:],
        "width_error_pct": max(errors[1:]),
    }


def card_sha256(card: ModelCard) -> str:
    """The card text's SHA-256: what ties a table to the card a realisation must use."""
    return hashlib.sha256(card.text.encode()).hexdigest()


def physical_width(device: TransistorTable, width: float | np.ndarray) -> Any:
    """The drawn width in m of a transistor whose family width (in reference widths) is ``width``:
    ``W = ΔW + width·(W_ref − ΔW)``, the effective width scaling with the current."""
    offset_m, reference_m = device.source["width_offset_m"], device.source["reference_width_m"]
    return offset_m + width * (reference_m - offset_m)


def _as_json(result: Tabulation) -> dict[str, Any]:
    return {"device": result.device.spec(), "report": result.report}


def _read_cache(path: Path, key: str) -> Tabulation | None:
    """The cached tabulation, or None when there is none or it does not hold up (then it is recomputed)."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_CACHE_BYTES:
            return None
        data = read_json_mapping(path, label="device-table cache file")  # bounded, UTF-8, a JSON object
        if data.get("format") != CACHE_FORMAT or data.get("key") != key:
            return None
        device, report = resolve(data["device"]), data["report"]
        if not isinstance(device, TransistorTable) or device.spec() != data["device"] or not isinstance(report, dict):
            return None
        return Tabulation(device, report)
    except (OSError, ValueError, TypeError, KeyError, KirchhoffError):
        return None
