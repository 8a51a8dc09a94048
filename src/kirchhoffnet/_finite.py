"""NaN is never a pass or a result: the checks every comparison, metric, report and option goes through.

``nan > limit`` is false, so a comparison with a NaN silently passes; ``json.dumps`` refuses NaN, so
a result with one is lost at the last moment. These helpers turn a non-finite figure into a
[`KirchhoffError`][kirchhoffnet.KirchhoffError] where it is produced, naming it and saying how to fix it.
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np

from kirchhoffnet.errors import ConfigError, KirchhoffError, SolverError

T = TypeVar("T")

SEED_MAX = 2**63 - 1
"""Largest seed, in configs and on the command line: torch's generators take a 64-bit seed (a larger
one overflows only when a run starts)."""


def _bad_count(value: Any) -> tuple[int, int, str]:
    """(non-finite entries, entries, the first bad value as text) of a number, array or tensor."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().double().numpy()
    array = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(array)
    first = str(array[bad].flat[0]) if bad.any() else ""
    return int(bad.sum()), int(array.size), first


def require_finite(what: str, value: T, fix: str = "", error: type[KirchhoffError] = SolverError) -> T:
    """``value`` (a number, array or tensor) unchanged if every entry is finite, else ``error``.

    Args:
        what: the figure's name and where it comes from, e.g. ``"ngspice's node voltages"``.
        fix: what to do about it; appended to the message.
        error: the error class (a solver's NaN is a SolverError, a NaN option a ConfigError).
    """
    try:
        bad, size, first = _bad_count(value)
    except (TypeError, ValueError):
        raise error(f"{what} is not a number (got {type(value).__name__})") from None
    if bad:
        found = f"is {first}" if size == 1 else f"{bad} of {size} values are NaN or infinite (first {first})"
        raise error(f"{what} must be finite but {found}" + (f"; {fix}" if fix else ""))
    return value


def finite_number(
    what: str, value: Any, *, low: float | None = None, high: float | None = None, open_low: bool = False
) -> float:
    """``value`` as a float if it is finite and within ``[low, high]`` (``(low, high]`` with ``open_low``).

    Raises:
        ConfigError: naming ``what`` (an option or key), the value and the allowed range.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {str(value)[:40]!r}") from None
    bracket = "(" if open_low else "["
    span = f"{bracket}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
    below = low is not None and (number <= low if open_low else number < low)
    above = high is not None and number > high
    if not math.isfinite(number) or below or above:
        raise ConfigError(f"{what} must be a finite number in {span}, got {number:g}")
    return number
