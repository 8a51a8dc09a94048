"""The command's thread policy: one torch thread unless the user asks for more."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app


@pytest.fixture
def restore_threads():
    """The command changes process-wide settings; put them back for the next test."""
    torch_threads = torch.get_num_threads()
    yield
    torch.set_num_threads(torch_threads)


def _run(*options: str) -> None:
    """Start the command (its callback sets the threads) on a subcommand's help, which does nothing else."""
    result = CliRunner().invoke(app, [*options, "eval", "--help"])
    assert result.exit_code == 0, result.output


def test_default_is_one_thread(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    _run()
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("count", [1, 2])
def test_threads_option_sets_the_count(restore_threads, monkeypatch, count):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(3 - count)  # the other value, so that the option must change it
    _run("--threads", str(count))
    assert torch.get_num_threads() == count


def test_omp_num_threads_is_the_users_choice(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    _run()
    assert torch.get_num_threads() == 2


def test_threads_out_of_range_is_one_line_error(restore_threads):
    result = CliRunner().invoke(app, ["--threads", "0", "eval", "--help"])
    assert result.exit_code == 2
    assert "--threads" in result.output


def test_importing_the_library_leaves_torch_threads_alone():
    code = "import torch; torch.set_num_threads(2); import kirchhoffnet.cli.main; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2"
