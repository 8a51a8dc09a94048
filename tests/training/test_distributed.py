"""Data-parallel training: two gloo processes on CPU train in lockstep (DDP averages gradients) and close the
process group in the order that cannot deadlock."""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from kirchhoffnet.training import train

from .helpers import tiny_flow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_LIMIT_S = 300
"""Both ranks train in about 15 s; a rank still running after this is stuck (a collective nobody joins)."""


def _rank(rank: int, world: int, port: int, run_dir: str, out_dir: str) -> None:
    # A stuck rank prints every thread's stack (the test's captured output) and exits, rather than hang CI.
    faulthandler.dump_traceback_later(_LIMIT_S - 30, exit=True)
    # What torchrun sets for each process. Gloo pairs the ranks over the loopback interface: by default it takes
    # the address the host name resolves to, which in some containers no peer reaches (pytorch/pytorch#31940).
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.manual_seed(rank)  # different initialisations: DDP must broadcast rank 0's
    # A DDP wrapper alive when the group is destroyed frees it later, holding the GIL: gloo's destructor can then
    # deadlock against a worker thread freeing a collective's tensors (a rare hang, so the order is what is tested).
    destroy, wrappers_at_destroy = dist.destroy_process_group, []

    def counting_destroy(*args, **kwargs):
        wrappers_at_destroy.append(sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
        destroy(*args, **kwargs)

    dist.destroy_process_group = counting_destroy
    result = train(tiny_flow("train.epochs=2"), run_dir, progress=False)
    flat = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    torch.save(
        {"parameters": flat, "wrappers_at_destroy": wrappers_at_destroy}, os.path.join(out_dir, f"rank{rank}.pt")
    )


def test_two_gloo_processes_keep_identical_parameters(tmp_path):
    run_dir = tmp_path / "run"
    ranks = mp.start_processes(
        _rank, args=(2, _free_port(), str(run_dir), str(tmp_path)), nprocs=2, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + _LIMIT_S
    while not ranks.join(timeout=5):  # raises when a rank fails, and stops the other one
        if time.monotonic() > deadline:
            for process in ranks.processes:
                process.kill()
            pytest.fail(f"the two gloo ranks did not finish within {_LIMIT_S} s (their stacks are in the output)")
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert torch.equal(first["parameters"], second["parameters"])
    assert first["wrappers_at_destroy"] == second["wrappers_at_destroy"] == [0]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # 256 points split over 2 ranks are 128 each: 2 batches of 64 per epoch and rank.
    assert metrics["steps"] == 4
    assert metrics["history"]["val_loss"][-1] < metrics["history"]["val_loss"][0]
