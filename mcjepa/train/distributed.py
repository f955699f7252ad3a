"""torchrun / DistributedDataParallel helpers (env:// initialisation, as in the VICReg codebase)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_distributed(device_type: str) -> tuple[int, int]:
    """(rank, world_size); initialises the process group when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


class GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward all-reduces the gradient and returns this rank's slice (VICReg's
    FullGatherLayer): the variance and covariance terms then see the global batch."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(output, x.contiguous())
        return tuple(output)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        all_gradients = torch.stack(grads)
        dist.all_reduce(all_gradients)
        return all_gradients[dist.get_rank()]


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """(N_local, D) -> (N_global, D) with gradients; identity outside DDP."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return x
    return torch.cat(GatherWithGrad.apply(x))
