"""Progress of long work off a terminal: whole lines at a fixed interval, silence for short work.

pytest's captured stderr is not a terminal: it stands for a log file.
"""

from __future__ import annotations

import io
import sys
import time

import pytest
from tqdm import tqdm

from kirchhoffnet import _progress
from kirchhoffnet._progress import ENV, bar, line_interval_s
from kirchhoffnet.errors import ConfigError


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_long_work_off_a_terminal_writes_whole_lines_once_per_interval(capsys, monkeypatch):
    monkeypatch.setenv(ENV, "0.2")
    for _ in bar(range(10), desc="demo", unit="step"):
        time.sleep(0.05)  # 0.5 s of work: lines near 0.2 s and 0.4 s, and the final figures
    text = capsys.readouterr().err
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert 2 <= len(lines) <= 4, lines
    assert all(line.startswith("demo:") for line in lines)
    assert "10/10" in lines[-1] and "100%" in lines[-1]
    counts = [int(line.split("|")[2].split("/")[0]) for line in lines]
    assert counts == sorted(counts) and counts[0] < 10


def test_short_work_off_a_terminal_is_silent(capsys, monkeypatch):
    monkeypatch.setenv(ENV, "30")
    monkeypatch.setattr(_progress, "_last_line", time.time())  # a line was just written
    steps = bar(total=5, desc="train", unit="step")
    for _ in range(5):
        steps.update(1)
    steps.close()
    assert capsys.readouterr().err == ""


def test_the_interval_counts_from_the_last_line_of_any_bar(capsys, monkeypatch):
    """A bar that starts after a silence as long as the interval (the process's start-up, another bar's
    end) writes at its first step: the gaps between lines stay within one interval."""
    monkeypatch.setenv(ENV, "0.3")
    monkeypatch.setattr(_progress, "_last_line", time.time() - 0.3)
    steps = bar(total=2, desc="late", unit="step")
    steps.update(1)
    assert capsys.readouterr().err.startswith("late:")
    steps.close()


@pytest.mark.parametrize("setting", ["0", None])
def test_disabled_progress_writes_nothing(capsys, monkeypatch, setting):
    monkeypatch.setenv(ENV, "0" if setting == "0" else "0.01")
    for _ in bar(range(5), enabled=setting is not None):
        time.sleep(0.02)
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_tqdms_own_bar(monkeypatch):
    monkeypatch.setattr(sys, "stderr", _Stream(tty=True))
    progress = bar(range(3), desc="demo")
    assert type(progress) is tqdm
    list(progress)
    assert "\r" in sys.stderr.getvalue()


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_a_bad_interval_is_a_config_error(monkeypatch, raw):
    monkeypatch.setenv(ENV, raw)
    with pytest.raises(ConfigError, match=rf"^{ENV}=.* must be a number of seconds >= 0"):
        line_interval_s()


def test_the_interval_defaults_to_thirty_seconds(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert line_interval_s() == 30.0


def test_a_jupyter_kernel_gets_tqdm_auto_not_log_lines(monkeypatch):
    """A notebook's stderr is no terminal, yet its bar redraws: tqdm.auto there, not the log-file lines."""
    import types

    from tqdm.auto import tqdm as auto_tqdm

    class ZMQInteractiveShell:  # the class name IPython's kernel shell has
        pass

    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    monkeypatch.setattr(sys, "stderr", _Stream(tty=False))
    with bar(total=3, desc="nb") as progress:
        assert isinstance(progress, auto_tqdm) and not isinstance(progress, _progress._Lines)
    monkeypatch.delitem(sys.modules, "IPython")
    with bar(total=3, desc="log") as progress:
        assert isinstance(progress, _progress._Lines)  # a plain process off a terminal: whole lines
