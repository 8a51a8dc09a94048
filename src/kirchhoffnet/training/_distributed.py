"""Data-parallel training under ``torchrun``: one process per device, gradients averaged by DDP.

The same command runs alone or under ``torchrun --nproc_per_node K``: the environment variables
torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...) switch the process
group on, with gloo on CPU and NCCL on GPU.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import cast

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from kirchhoffnet.errors import ConfigError, TrainingError


@dataclass(frozen=True)
class Cluster:
    """This process's place among the training processes."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def leader(self) -> bool:
        """Rank 0 alone writes files and shows progress."""
        return self.rank == 0

    def environment(self) -> dict[str, object]:
        """Where and with what the run computed, as ``metrics.json`` records it."""
        return {
            "device": str(self.device),
            "world_size": self.world_size,
            "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
        }


def join(device: str) -> Cluster:
    """Join the process group torchrun set up (if any) and pick this process's device."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was requested but torch.cuda.is_available() is False; use --device cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Cluster(0, 1, torch.device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    where = torch.device(f"cuda:{local}") if device == "cuda" else torch.device("cpu")
    return Cluster(dist.get_rank(), dist.get_world_size(), where, owns)


def settle(cluster: Cluster) -> None:
    """Wait until every rank has finished its run, so that none returns while the leader still writes its files."""
    if cluster.active:
        dist.barrier()


def leave(cluster: Cluster) -> None:
    """Close the process group if `join` opened it, once no DDP wrapper holds it (see `unwrapped`).

    The group must be freed by `destroy_process_group`, which releases the GIL while gloo's destructor joins its
    worker threads. A DDP reducer that outlives the group frees it later holding the GIL, and a worker still freeing
    the tensors of the last collective waits for the GIL: a deadlock (gdb: the worker in ``take_gil`` under
    ``TensorImpl::decref_pyobject``).
    """
    if cluster.owns_group and dist.is_initialized():
        gc.collect()  # a dropped DDP wrapper sits in a reference cycle: collected now, not whenever gc next runs
        dist.destroy_process_group()


def wrap(module: nn.Module, cluster: Cluster) -> nn.Module:
    """DDP around ``module`` when several processes train; rank 0's parameters are broadcast.

    Buffers (edge lists, capacitances) are constant: synced once at start, not before every step.
    """
    if not cluster.active:
        return module
    ids = [cluster.device.index] if cluster.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


def unwrapped(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper: its owner drops the wrapper this way before `leave`."""
    return cast(nn.Module, module.module) if isinstance(module, DistributedDataParallel) else module


def epoch_batches(size: int | None, batch_size: int, seed: int, epoch: int, cluster: Cluster) -> list[Tensor | None]:
    """This rank's share of one shuffled pass over ``size`` examples, in batches (``[None]`` without a data
    set); an epoch's step ``p`` takes batch ``p mod len`` of it, so steps_per_epoch is never materialised."""
    if size is None:
        return [None]
    indices = cast(Dataset[int], range(size))  # the sampler only needs len()
    sampler: DistributedSampler[int] = DistributedSampler(indices, cluster.world_size, cluster.rank, seed=seed)
    sampler.set_epoch(epoch)
    return list(torch.tensor(list(sampler), dtype=torch.long).split(batch_size))


def any_rank(flag: bool, cluster: Cluster) -> bool:
    """Whether ``flag`` holds on at least one rank (every rank gets the same answer)."""
    if not cluster.active:
        return flag
    value = torch.tensor([float(flag)], device=cluster.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def total(values: list[float], cluster: Cluster) -> list[float]:
    """Element-wise sum of ``values`` over ranks."""
    if not cluster.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=cluster.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def share_failure(message: str | None, cluster: Cluster) -> None:
    """Raise ``message`` (from rank 0) as a [`TrainingError`][kirchhoffnet.errors.TrainingError] on every rank."""
    if cluster.active:
        box = [message]
        dist.broadcast_object_list(box, src=0)
        message = box[0]
    if message:
        raise TrainingError(message)
