"""torchrun / DistributedDataParallel helpers (env:// initialisation, as in the VICReg codebase).

A run on N processes trains on the same global batch as on one: `train.batch_size` and
`train.image_batch_size` are global, and each rank takes 1/N of them (`per_rank`)."""

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


def local_rank() -> int:
    """This process's rank on its node (torchrun and submitit set LOCAL_RANK), 0 outside a launcher."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def per_rank(global_batch: int, world: int, name: str) -> int:
    """The share of each of `world` ranks in a global batch; ValueError naming the config key `name` when
    `global_batch` is not a multiple of `world`."""
    if global_batch % world:
        raise ValueError(f"{name}={global_batch} is the global batch and must be a multiple of the number of "
                         f"processes ({world}): each rank takes an equal share")
    return global_batch // world


def mean_over_ranks(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every scalar term averaged over the ranks (one all_reduce), so that rank 0 logs, and every rank's guard
    judges, the global batch's values; the terms unchanged outside DDP. Per-rank statistics (the feature std
    and norm of the guards) become their mean over ranks."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return terms
    names = sorted(terms)
    values = torch.stack([terms[name].detach().float().reshape(()) for name in names])
    dist.all_reduce(values)
    return dict(zip(names, values / dist.get_world_size()))


def check_replicas(model: torch.nn.Module) -> None:
    """RuntimeError naming the first parameter in which a rank's replica differs from rank 0's (per-tensor
    sums, gathered from every rank: equal weights give bit-equal sums); no-op outside DDP. Buffers are left
    out: BatchNorm's running statistics follow each rank's own batch on CPU."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    names, tensors = zip(*((name, p.detach()) for name, p in model.named_parameters()))
    local = torch.stack([t.double().sum() for t in tensors])
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    for rank, other in enumerate(gathered):
        differs = (other != gathered[0]).nonzero()
        if differs.numel():
            raise RuntimeError(f"the DDP replicas are out of sync: rank {rank}'s parameter "
                               f"{names[int(differs[0])]!r} differs from rank 0's")


def barrier() -> None:
    """Wait for every rank (no-op outside DDP)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def leave_process_group() -> None:
    """Destroy the process group, if one was joined (the end of a torchrun or submitit process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


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
