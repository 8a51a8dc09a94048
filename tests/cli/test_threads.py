"""The command's thread policy: ``--threads N`` puts the numba kernels on N threads and torch on one; one
thread unless the user asks for more."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from kirchhoffnet import runtime
from kirchhoffnet.cli.main import app


def _run(*options: str) -> None:
    """Start the command (its callback sets the threads) on a subcommand's help, which does nothing else."""
    result = CliRunner().invoke(app, [*options, "eval", "--help"])
    assert result.exit_code == 0, result.output


def test_default_is_one_thread(restore_threads, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    runtime.set_kernel_threads(2)
    _run()
    assert (torch.get_num_threads(), runtime.kernel_threads()) == (1, 1)


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("omp", [None, "2"])
def test_threads_option_sets_the_kernels_count_and_torch_on_one(restore_threads, monkeypatch, count, omp):
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:  # an explicit --threads decides even where OMP_NUM_THREADS is set
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    torch.set_num_threads(2)  # so that the option must change it
    runtime.set_kernel_threads(3 - count)
    _run("--threads", str(count))
    assert (torch.get_num_threads(), runtime.kernel_threads()) == (1, count)


def test_omp_num_threads_is_the_users_choice(restore_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    runtime.set_kernel_threads(None)
    _run()
    assert (torch.get_num_threads(), runtime.kernel_threads()) == (2, 2)  # the kernels follow torch


def test_threads_out_of_range_is_one_line_error(restore_threads):
    result = CliRunner().invoke(app, ["--threads", "0", "eval", "--help"])
    assert result.exit_code == 2
    assert "--threads" in result.output


def test_importing_the_library_leaves_torch_threads_alone():
    code = "import torch; torch.set_num_threads(2); import kirchhoffnet.cli.main; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2"
