"""Where this process stands among the training processes, and the two collectives the job needs.

The rank comes from the environment `torchrun` sets (`RANK`, `WORLD_SIZE`) before anything
else: a data-loader worker started with `spawn` inherits the environment but not the parent's
process group, so asking `torch.distributed` there would make every rank read rank 0's rows.
Only a process without those variables (a single-device run) falls back to the process group.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(global rank, world size): from the environment, else the process group, else (0, 1)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if _grouped():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def global_rank() -> int:
    return rank_and_world()[0]


def gather_objects(value: object) -> list:
    """`value` of every rank, in rank order (just `[value]` without a process group)."""
    if not _grouped() or dist.get_world_size() == 1:
        return [value]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def sum_over_ranks(counts: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(`counts` summed over every rank, the world size); unchanged without a process group."""
    if not _grouped() or dist.get_world_size() == 1:
        return counts, 1
    total = counts.detach().clone()
    dist.all_reduce(total)
    return total, dist.get_world_size()
