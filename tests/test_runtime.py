"""The allocator setting that keeps freed temporaries in the heap."""

from __future__ import annotations

import platform
import resource

import pytest
import torch

from kirchhoffnet import runtime

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_blocks_are_reused_without_page_faults(monkeypatch):
    monkeypatch.setattr(runtime, "_applied", None)
    assert runtime.keep_freed_memory()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(100):  # 1 MiB each: above glibc's default 128 KiB thresholds
        torch.empty(1 << 18).fill_(1.0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    # Returned to the kernel after each free, every allocation would fault its 256 pages back
    # in: ~25,600 faults. Kept in the heap, only the first one does.
    assert faults < 2_000, faults


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
