"""Process-group glue for multi-process training (torchrun / ``accelerate launch``), gloo or NCCL.

The engine runs unchanged on one process: every function here degrades to the identity. Several
processes read RANK/WORLD_SIZE/MASTER_ADDR from the environment (both launchers set them) and gather
the per-pair tensors that β-DPO's calibrator needs. Gradients are averaged by the wrappers of
``parallel.py`` (torch DDP or FSDP2), never here. A process group this module did not create (a
caller's own) is left to its creator at ``shutdown``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class World:
    """This process's place: rank in [0, size), and the device it trains on."""

    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, global_size: int) -> slice:
        """Contiguous positions of this rank in a global micro-batch of ``global_size`` pairs."""
        per_rank = global_size // self.size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)


def pick_device(requested: str) -> torch.device:
    """``auto`` → CUDA when available (this process's LOCAL_RANK), else CPU."""
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available on this machine")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


_created: list[bool] = []  # one entry while a process group this module created is alive


def _backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init_world(requested_device: str) -> World:
    """Joins the process group when launched with WORLD_SIZE > 1 (gloo on CPU, NCCL on CUDA)."""
    device = pick_device(requested_device)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend=_backend(device))
        _created.append(True)
    rank = dist.get_rank() if size > 1 else 0
    return World(rank=rank, size=size, device=device)


def join_alone(world: World) -> None:
    """A process group of one (in-memory store), for FSDP2 in a single process."""
    if world.size == 1 and not dist.is_initialized():
        dist.init_process_group(_backend(world.device), store=dist.HashStore(), rank=0, world_size=1)
        _created.append(True)


def barrier(world: World) -> None:
    """Waits for every rank (no-op on one process)."""
    if world.size > 1:
        dist.barrier()


def gather_cat(tensor: Tensor, world: World) -> Tensor:
    """Concatenates a (B, …) tensor over ranks in rank order (identity on one process)."""
    if world.size == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world.size)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_objects(items: list, world: World) -> list:
    """The concatenation of every rank's list of picklable items, in rank order (identity on one)."""
    if world.size == 1:
        return items
    parts: list[list] = [[] for _ in range(world.size)]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def any_rank(flag: bool, world: World) -> bool:
    """True on every rank when ``flag`` is true on any rank (for stop requests)."""
    if world.size == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=world.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def shutdown(world: World) -> None:
    """Leaves the process group if this module created it."""
    if _created and dist.is_initialized():
        dist.destroy_process_group()
    _created.clear()
