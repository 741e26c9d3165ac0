"""Data-parallel training with ``torchrun``: the same training functions, on several processes.

Launch any script that calls the course's training functions with, e.g.::

    torchrun --nproc_per_node 2 train.py          # 2 processes on this machine
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 train.py

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in each process.
The script calls :func:`init` once (before building models); after that,
:func:`course_utils.vae.train_vae`, :func:`course_utils.lm.train_lm` and
:func:`course_utils.classifier.train_classifier` train data-parallel:

- every process holds the whole (in-memory) dataset and draws the *same*
  shuffled global batch (same seed), then keeps its own shard of it
  (:func:`shard`): process r of W takes rows ``tensor_split(W)[r]``;
- the model is wrapped in ``DistributedDataParallel``, which averages the
  gradients over processes during ``backward`` (gloo on CPUs, NCCL on GPUs);
  each process scales its loss by ``W * n_local / n_global`` so that the
  average is exactly the gradient of the global batch's mean loss, even when
  the shards are unequal (n counts rows, or the non-padding targets of padded
  rows: :func:`count_targets`);
- so every process applies the same update, and the parameters stay
  identical on every rank; losses are summed over ranks for the history;
- only rank 0 shows progress bars and writes checkpoints (:func:`is_main`).

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is a
no-op and the training functions run exactly as in the notebooks.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes W (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0, the process that prints and writes files."""
    return rank() == 0


def init(backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` set up; return this process's device.

    Reads ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` from the environment. With a
    GPU per process the backend is NCCL and the device ``cuda:LOCAL_RANK``;
    otherwise (or with ``COURSE_DEVICE=cpu`` or ``backend="gloo"``) gloo on the
    CPU. Outside ``torchrun`` it returns :func:`course_utils.get_device` and
    starts nothing.
    """
    from course_utils.devices import get_device

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return get_device()
    cpu_asked = os.environ.get("COURSE_DEVICE") == "cpu" or backend == "gloo"
    use_cuda = torch.cuda.is_available() and not cpu_asked
    device = torch.device("cpu")
    if use_cuda:
        local_rank, n_gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
        if local_rank >= n_gpus:
            raise RuntimeError(
                f"process with LOCAL_RANK {local_rank} needs GPU {local_rank}, but this machine "
                f"has {n_gpus}; start at most {n_gpus} processes per machine "
                "(--nproc_per_node), or train on the CPU with COURSE_DEVICE=cpu"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"))
    return device


def shutdown() -> None:
    """Leave the process group (call at the end of a torchrun script)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` itself.

    The wrapper shares the model's parameters: train through the returned
    module, save and evaluate ``model``.
    """
    if not is_distributed():
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """This process's rows of a global batch: ``t.tensor_split(W)[rank]`` for each tensor.

    Each tensor (B, ...) -> (B_r, ...), with the B_r as equal as possible; ``None``
    (an absent label or condition) stays ``None``.
    """
    if not is_distributed():
        return tensors
    w, r = world_size(), rank()
    return tuple(None if t is None else t.tensor_split(w)[r] for t in tensors)


def scale_loss(loss: torch.Tensor, n_local, n_global) -> torch.Tensor:
    """A local mean loss, scaled so that DDP's gradient average is the global mean's gradient.

    DDP averages gradients over W processes, so process r's mean over its
    n_local terms is multiplied by ``W * n_local / n_global``. The counts are of
    whatever the mean runs over: rows, or, for padded targets, the targets that are
    not ignored (:func:`count_targets`; ints or device tensors, so no sync). Not
    distributed: ``loss`` itself, untouched.
    """
    if not is_distributed():
        return loss
    return loss * (world_size() * n_local / n_global)


def count_targets(y: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """How many targets of ``y`` (any shape) a mean cross-entropy averages over: a () tensor.

    Those not equal to ``ignore_index``; counted on the device (no host sync). With padded
    rows, ``scale_loss(loss, count_targets(y_shard), count_targets(y_batch))`` makes the
    processes' average exactly the gradient of the whole batch's mean over its targets.
    """
    return (y != ignore_index).sum()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes, in place (a no-op when not distributed)."""
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t
