"""The process-level settings: the allocator's thresholds that keep freed temporaries in the heap, and the thread
policy."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys

import pytest
import torch

from kirchhoffnet import runtime
from kirchhoffnet.errors import ConfigError

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_blocks_are_reused_without_page_faults(monkeypatch, one_torch_thread):
    monkeypatch.setattr(runtime, "_applied", None)
    assert runtime.keep_freed_memory()
    # This thread's faults only (and torch on this thread): the process's count also holds whatever other
    # threads of the test process fault meanwhile, which once pushed it past the bound in a full run.
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    for _ in range(100):  # a solve's pattern: several 1 MiB temporaries alive at once, then freed together
        blocks = [torch.empty(1 << 18).fill_(1.0) for _ in range(8)]
        del blocks
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
    # glibc's default trims the freed 8 MiB off the heap's top each time and faults its 2,048 pages back in on the
    # next: ~150,000 faults here (measured with KIRCHHOFFNET_MALLOC=default). Kept, only the first pass does.
    # (A single block freed and reallocated does not show it: glibc's dynamic threshold already keeps that one.)
    assert faults < 10_000, faults


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.setenv("KIRCHHOFFNET_MALLOC", "default")
    assert runtime.keep_freed_memory() is False
    monkeypatch.setattr(runtime, "_applied", None)
    monkeypatch.delenv("KIRCHHOFFNET_MALLOC")
    assert runtime.keep_freed_memory() is GLIBC


def test_the_library_leaves_the_allocator_alone_and_the_command_sets_it(monkeypatch):
    """A process-wide setting is the application's choice: building and solving a circuit does not make
    it, the ``kirchhoffnet`` command does (for every subcommand, before any work)."""
    from typer.testing import CliRunner

    import kirchhoffnet as kn
    from kirchhoffnet.cli.main import app

    monkeypatch.setattr(runtime, "_applied", None)
    kn.simulate(kn.Circuit(kn.topology.fully_connect(3)), torch.zeros(2, 2))
    assert runtime._applied is None
    assert CliRunner().invoke(app, ["hw", "report", "--help"]).exit_code == 0
    assert runtime._applied is GLIBC


@pytest.mark.parametrize("count", [1, 2, 3])
def test_n_threads_are_the_kernels_and_torch_stays_on_one(restore_threads, count):
    torch.set_num_threads(2)  # so that the policy must change it
    runtime.use_threads(count)
    assert (torch.get_num_threads(), runtime.kernel_threads()) == (1, count)


def test_threads_for_a_block_put_both_counts_back(restore_threads):
    torch.set_num_threads(2)
    runtime.set_kernel_threads(None)
    with runtime.threads(3):
        assert (torch.get_num_threads(), runtime.kernel_threads()) == (1, 3)
    assert (torch.get_num_threads(), runtime._kernel_threads) == (2, None)
    with runtime.threads(None):  # no request: nothing changes
        assert (torch.get_num_threads(), runtime.kernel_threads()) == (2, 2)


@pytest.mark.parametrize("call", [runtime.use_threads, runtime.set_kernel_threads])
@pytest.mark.parametrize("count", [0, runtime.MAX_THREADS + 1])
def test_thread_counts_out_of_range_are_one_line_errors(restore_threads, call, count):
    with pytest.raises(ConfigError, match=rf"^(kernel )?threads must be between 1 and {runtime.MAX_THREADS}, got"):
        call(count)


def test_importing_the_library_leaves_both_thread_counts_alone():
    code = (
        "import torch; torch.set_num_threads(2); import kirchhoffnet, kirchhoffnet.circuit._fused, "
        "kirchhoffnet.cli.main; from kirchhoffnet import runtime; "
        "print(torch.get_num_threads(), runtime._kernel_threads)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["2", "None"]
