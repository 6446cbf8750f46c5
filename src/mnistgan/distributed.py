"""Data-parallel training under `torchrun`: the process group, sharding, and rank-0-only work.

This module owns what changes when one run spans several processes:
  * `World.from_env()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and joins the
    process group: gloo on CPU, nccl on CUDA (each rank on cuda:LOCAL_RANK);
  * the batch convention: `train.batch_size` is the *global* batch. Every rank draws the same
    global batch position and the same global noise (the generators are seeded alike), and
    keeps its own contiguous slice (`shard`). So a run's data order, noise and learning-rate
    meaning do not depend on the number of processes, and a run resumes with the same or with
    another world size; only batch-norm statistics (per rank) differ from a one-process run;
  * `wrap`: DistributedDataParallel around G and D (gradients averaged across ranks, so the
    loss of the global batch is the mean of the ranks' means);
  * `agree`: a flag any rank raises (a signal, the time limit) stops every rank at the same step.
Rank 0 alone logs, draws and writes the run folder; the Trainer asks `World.main`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mnistgan.errors import UserError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_env(cls) -> World:
        """One process (no torchrun), or this rank of a torchrun launch, process group joined."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size == 1:
            return cls()
        return cls(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: cuda:LOCAL_RANK when the run is on CUDA."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def join(self, device: torch.device) -> None:
        if self.distributed and not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def leave(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise UserError(f"train.batch_size {batch_size} (the global batch) must be a "
                            f"multiple of the {self.size} processes")

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (all of it in one process)."""
        return x.chunk(self.size)[self.rank] if self.distributed else x

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.distributed:
            return model
        ids = [self.local_rank] if next(model.parameters()).is_cuda else None
        return DistributedDataParallel(model, device_ids=ids)

    def agree(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when it is true on any rank (a collective: all ranks must call)."""
        if not self.distributed:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


__all__ = ["World"]
