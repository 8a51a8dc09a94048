"""Progress of long work, on a terminal and off it.

On a terminal the bar is tqdm's; in a Jupyter kernel it is ``tqdm.auto``'s (a widget where ipywidgets is
installed), since a notebook shows a redrawn bar and its cell output is not a log. Off a terminal (a log
file, CI, ``nohup``, a pipe) a bar redrawn with carriage returns is unreadable, and no output at all cannot
be told from a hang; there the same figures are written as whole lines, one per interval, so a short run
stays silent and a long one shows it is alive. The interval counts from the last line any bar wrote (at
first, from the start of the process), so the silence between lines stays within one interval across a
command's successive bars too, while one bar or another is running. The interval is
``KIRCHHOFFNET_PROGRESS_S`` seconds (default 30; ``0`` turns the lines off).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from kirchhoffnet.errors import ConfigError, shown

ENV = "KIRCHHOFFNET_PROGRESS_S"
DEFAULT_INTERVAL_S = 30.0
T = TypeVar("T")


def _process_start() -> float:
    """When this process started (Linux's /proc; elsewhere now, at import), on tqdm's clock: the start-up
    before the first bar (imports, data) counts towards the first interval."""
    try:
        ticks = float(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        lines = Path("/proc/stat").read_text().splitlines()
        boot = next(float(line.split()[1]) for line in lines if line.startswith("btime"))
        return min(time.time(), boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


_last_line = _process_start()  # when the last progress line was written, or the process started


def line_interval_s() -> float:
    """Seconds between progress lines off a terminal (0: none), from ``KIRCHHOFFNET_PROGRESS_S``."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{ENV}={shown(raw)} must be a number of seconds >= 0 (0 turns progress lines off)")
    return value


class _Lines(tqdm):
    """tqdm that writes each refresh as one whole line and never redraws."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.disable:  # tqdm counts its interval from the bar's start; count it from the last line
            self.last_print_t: float = min(float(self.last_print_t), _last_line)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        global _last_line
        if msg == "":  # a request to clear the bar: lines are never cleared
            return False
        self.fp.write(str(self) + "\n")
        self.fp.flush()
        _last_line = time.time()
        return True

    def close(self) -> None:
        if not self.disable and self.last_print_t >= self.start_t + self.delay and self.last_print_n != self.n:
            self.display()  # the final figures, once some were shown
        self.leave = False
        super().close()


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), where stderr is no terminal yet a
    bar redraws."""
    shell = sys.modules.get("IPython")
    get_ipython = getattr(shell, "get_ipython", None)
    instance = get_ipython() if callable(get_ipython) else None
    return type(instance).__name__ == "ZMQInteractiveShell"


def bar(
    iterable: Iterable[T] | None = None,
    *,
    desc: str = "",
    unit: str = "it",
    total: float | None = None,
    enabled: bool = True,
    initial: int = 0,
    leave: bool = True,
) -> Any:
    """A progress bar over ``iterable`` (or ``total`` steps advanced with ``update``): tqdm on a
    terminal, a line every `line_interval_s` seconds elsewhere; does nothing when not ``enabled``."""
    common: dict[str, Any] = {"desc": desc, "unit": unit, "total": total, "initial": initial, "file": sys.stderr}
    if _in_notebook():
        from tqdm.auto import tqdm as notebook_tqdm

        return notebook_tqdm(iterable, disable=not enabled, leave=leave, **common)
    if sys.stderr.isatty():
        return tqdm(iterable, disable=not enabled, leave=leave, dynamic_ncols=True, **common)
    interval = line_interval_s()
    return _Lines(
        iterable,
        disable=not enabled or interval == 0,
        ascii=True,
        ncols=100,
        mininterval=interval,
        maxinterval=max(interval, 10.0),
        miniters=1,
        delay=max(1e-6, interval - (time.time() - _last_line)),  # > 0: no line as the bar opens
        **common,
    )
