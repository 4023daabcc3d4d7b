"""``torchrun`` support: read the launcher's environment, start the process group, reduce values.

Under ``torchrun --nproc_per_node N ...`` every process sees ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``); :func:`init_distributed` then joins the
group (NCCL on CUDA, Gloo on CPU) and picks ``cuda:LOCAL_RANK``. Without those variables (or with
``WORLD_SIZE=1``) everything here is a no-op, so the same training code runs alone or scaled out.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from archopt.errors import ArchoptError
from archopt.runtime.devices import resolve_device

__all__ = ["DistEnv", "all_reduce_max", "all_reduce_sum", "env_world", "init_distributed"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank, local_rank, world_size: from the launcher (0, 0, 1 when alone).
        device: this process's device.
        backend: ``"nccl"``, ``"gloo"`` or None (single process).
        owns_group: True when :func:`init_distributed` created the process group (and
            :meth:`shutdown` will destroy it).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def shutdown(self) -> None:
        """Destroy the process group if this module created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def env_world() -> tuple[int, int, int]:
    """``(rank, local_rank, world_size)`` from the environment torchrun sets ((0, 0, 1) if unset).

    Raises: ArchoptError for malformed values.
    """
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise ArchoptError(f"malformed torchrun environment (WORLD_SIZE / RANK / LOCAL_RANK): "
                           f"{err}") from None
    if world < 1 or not 0 <= rank < world:
        raise ArchoptError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, local, world


def init_distributed(device: str | torch.device = "auto", *,
                     timeout_s: float = 1800.0) -> DistEnv:
    """Join the launcher's process group (if any) and choose this process's device.

    Args:
        device: ``"auto"`` / ``"cpu"`` / ``"cuda"`` (under torchrun, ``cuda`` means
            ``cuda:LOCAL_RANK``).
        timeout_s: collective timeout.

    Returns: a :class:`DistEnv` (single process when ``WORLD_SIZE`` is unset or 1).
    Raises: ArchoptError (CUDA asked for but absent; fewer GPUs than local ranks).
    """
    _, local, world = env_world()
    dev = resolve_device(device)
    if world == 1:
        return DistEnv(device=dev)
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ArchoptError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA "
                               "devices; start fewer processes per node")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=_dt.timedelta(seconds=timeout_s))
        owns = True
    else:
        backend = dist.get_backend()
    return DistEnv(rank=dist.get_rank(), local_rank=local, world_size=dist.get_world_size(),
                   device=dev, backend=backend, owns_group=owns)


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum ``t`` over all ranks (in place; returned); no-op for a single process."""
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Maximum of ``t`` over all ranks (in place; returned); no-op for a single process."""
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t
