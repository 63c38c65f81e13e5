"""Multi-process training under ``torchrun``: process group, sharding, embedding gathering.

``torchrun --nproc_per_node N`` starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment;
:func:`init_distributed` reads them (NCCL on CUDA, gloo on CPU). Without them
training runs in one process and every function here is a no-op.

The contrastive loss needs negatives from the whole global batch, so each
process gathers every process's embeddings (and labels), keeps its own shard
as the tensor with a gradient and the others as constants, as open_clip does.
Every process then computes the same global loss; multiplying it by the world
size before DDP averages the gradients makes the update equal to that of one
process on the whole global batch (ours: open_clip leaves the 1/N factor).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "gather_with_local_grad", "init_distributed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, GPU ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any_flag(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on any (an interrupt seen by one rank)."""
        if not self.enabled:
            return flag
        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenation of ``tensor`` from every process, in rank order (no gradient)."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.detach().contiguous())
        return torch.cat(parts)

    def _device(self) -> torch.device:
        if dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group described by torchrun's environment variables, if any.

    Returns a single-process context when ``WORLD_SIZE`` is unset or 1. The
    backend is NCCL when this process trains on CUDA, gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = torch.cuda.is_available() and device != "cpu" and not device.startswith("cpu")
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        log.info("process %d of %d joined (%s)", rank, world, dist.get_backend())
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def gather_with_local_grad(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Every process's ``tensor`` in rank order; only the local shard keeps its gradient."""
    if not context.enabled:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(context.world_size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    parts[context.rank] = tensor
    return torch.cat(parts)
