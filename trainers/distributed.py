"""Running under torchrun: read the launcher's environment, join the process group, let rank 0 speak.

A plain `python train.py` is a world of one process and never touches torch.distributed, so every
helper here is a no-op there. Under `torchrun --nproc_per_node=N train.py ...` each process reads
RANK / WORLD_SIZE / LOCAL_RANK, takes the GPU numbered LOCAL_RANK (or the CPU), and joins one process
group (NCCL between GPUs, Gloo between CPU processes) with a bounded timeout, so a peer that stops
answering turns into an error instead of a hang.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from helpers.errors import ClothVisionError

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job: its global rank, the number of processes, its GPU number."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone prints progress and writes files."""
        return self.rank == 0


SINGLE_PROCESS = DistributedContext()


def detect_distributed(environment: dict[str, str] | None = None) -> DistributedContext:
    """The context torchrun describes in the environment; a single process when it is absent."""
    environment = os.environ if environment is None else environment
    if "RANK" not in environment or "WORLD_SIZE" not in environment:
        return SINGLE_PROCESS
    values = {}
    for name in LAUNCHER_VARIABLES:
        text = environment.get(name, "0")
        if not text.strip().isdigit():
            raise ClothVisionError(
                f"environment variable {name}={text!r} is not a whole number: launch "
                "train.py with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK"
            )
        values[name] = int(text)
    if values["WORLD_SIZE"] < 1 or values["RANK"] >= values["WORLD_SIZE"]:
        raise ClothVisionError(
            f"RANK={values['RANK']} does not fit WORLD_SIZE={values['WORLD_SIZE']}: "
            "launch train.py with torchrun instead of setting these variables by hand"
        )
    return DistributedContext(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])


def device_for_process(device: torch.device, context: DistributedContext) -> torch.device:
    """Each process of a multi-process job on CUDA takes the GPU numbered by its LOCAL_RANK."""
    if not context.enabled:
        return device
    if device.type == "cuda":
        if context.local_rank >= torch.cuda.device_count():
            raise ClothVisionError(
                f"LOCAL_RANK {context.local_rank} has no GPU: this machine has "
                f"{torch.cuda.device_count()}; start at most that many processes per node "
                "(torchrun --nproc_per_node)"
            )
        return torch.device("cuda", context.local_rank)
    if device.type != "cpu":
        raise ClothVisionError(
            f"several processes on device '{device.type}' are not supported: under torchrun "
            "use --device cuda or --device cpu"
        )
    return device


@contextmanager
def process_group(context: DistributedContext, device: torch.device, timeout_seconds: float) -> Iterator[None]:
    """Join the job's process group for the duration of the block (nothing to join for one process)."""
    if not context.enabled:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        # device_id binds the NCCL communicator to this GPU now instead of guessing at the first collective.
        dist.init_process_group("nccl", timeout=timedelta(seconds=timeout_seconds), device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_seconds))
    try:
        yield
    finally:
        dist.destroy_process_group()


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum tensor over all processes in place (returned for convenience)."""
    if is_initialized():
        dist.all_reduce(tensor)
    return tensor


def decision_of_rank_zero(decision: bool, device: torch.device) -> bool:
    """Rank 0's yes/no on every rank, so no process leaves a loop the others stay in."""
    if not is_initialized():
        return decision
    flag = torch.tensor([int(decision)], device=device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def value_of_rank_zero(value: float, device: torch.device) -> float:
    """Rank 0's number on every rank: a clock reading that must lead every rank to the same step."""
    if not is_initialized():
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.item()


def copy_buffers_from_rank_zero(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    DistributedDataParallel copies rank 0's buffers at the start of each training forward pass, but the
    last pass then updates each rank's statistics from its own batch. Evaluating with rank 0's copy makes
    every rank compute with exactly the weights rank 0 saves in the checkpoint.
    """
    if not is_initialized():
        return
    # One broadcast per dtype (float statistics, int64 batch counters), not one per buffer: a ResNet-101
    # has over three hundred of them.
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for buffer in module.buffers():
        by_dtype.setdefault(buffer.dtype, []).append(buffer)
    for buffers in by_dtype.values():
        flat = torch.cat([buffer.reshape(-1) for buffer in buffers])
        dist.broadcast(flat, src=0)
        for buffer, values in zip(buffers, flat.split([buffer.numel() for buffer in buffers]), strict=True):
            buffer.copy_(values.view_as(buffer))


def wait_for_all_processes() -> None:
    if is_initialized():
        dist.barrier()
