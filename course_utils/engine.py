"""The training engine's switches, shared by every training loop in course_utils.

What makes the course's loops fast is mostly *where the data live*: in-memory
datasets sit on the device and batches are sliced there
(:func:`course_utils.batches`), and losses are summed on the device and read
only at logging intervals (no ``.item()`` per step). This module holds the
rest, so that each loop asks for it in one line:

- :func:`make_optimizer`: Adam/AdamW with the *fused* CUDA kernel on a GPU
  (one kernel for the whole update instead of several per parameter); on the
  CPU PyTorch's default implementation, so CPU results stay bit-identical.
- :func:`prepare_model`: ``channels_last`` memory format for convolutional
  models on CUDA (tensor cores prefer it), and ``torch.compile`` behind a
  flag. Compilation is **off by default** (and always needs asking for on a
  CPU): it costs tens of seconds per model before the first step, more than a
  lecture-length run gains. Switch it on with ``compile=True`` or the
  environment variable ``COURSE_COMPILE=1``.
- :func:`to_memory_format`: put a batch in the model's memory format.
- :func:`check_loss`: at a logging sync, stop with :class:`DivergenceError` when the
  interval's loss is NaN or infinite (the loss sums kept on the device already carry
  the flag: one NaN step makes the interval's sum NaN, so no extra sync is needed).

Mixed precision (bfloat16 autocast on CUDA) is :func:`course_utils.devices.autocast`;
multi-process training is :mod:`course_utils.distributed`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import torch
from torch import nn

from course_utils.checks import check_choice

COMPILE_ENV = "COURSE_COMPILE"
"""Environment variable: ``1`` switches ``torch.compile`` on in every training function."""

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _device_of(params: list) -> torch.device:
    for p in params:
        if isinstance(p, dict):  # a parameter group
            return _device_of(list(p["params"]))
        return p.device
    raise ValueError("the optimizer got no parameters")


def make_optimizer(kind: str, params: Iterable, **kwargs) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (``kind="adam"``) or ``AdamW``, fused on CUDA.

    Args:
        params: the model's parameters (or parameter groups), all on one device.
        **kwargs: passed to the optimizer (``lr``, ``betas``, ``weight_decay``...).
    """
    check_choice(kind, "optimizer", tuple(_OPTIMIZERS))
    params = list(params)
    if _device_of(params).type == "cuda":
        kwargs.setdefault("fused", True)
    return _OPTIMIZERS[kind](params, **kwargs)


def compile_enabled(flag: bool | None) -> bool:
    """Resolve a ``compile`` argument: ``None`` reads ``$COURSE_COMPILE`` (off unless ``1``)."""
    if flag is None:
        return os.environ.get(COMPILE_ENV, "0") == "1"
    return bool(flag)


def uses_channels_last(model: nn.Module) -> bool:
    """Whether :func:`prepare_model` puts ``model`` in channels_last (conv models on CUDA)."""
    params = list(model.parameters())
    if not params or params[0].device.type != "cuda":
        return False
    return any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())


def prepare_model(model: nn.Module, compile: bool | None = None,
                  data_parallel: bool = True) -> nn.Module:
    """Make ``model`` ready for fast training; return the module to train *through*.

    Convolutional models on CUDA move to ``channels_last`` (in place); under
    ``torchrun`` the model is wrapped in ``DistributedDataParallel``
    (:func:`course_utils.distributed.wrap`); with ``compile`` (see
    :func:`compile_enabled`) the result is compiled in place
    (``nn.Module.compile``), so ``model.state_dict()`` and checkpoints stay the
    same. Train through the returned module, evaluate and save ``model``. On
    the CPU with the defaults this returns ``model`` itself, untouched.

    A loop that cannot train data-parallel passes ``data_parallel=False``; it
    then refuses to run under ``torchrun``, with a clear error.
    """
    from course_utils import distributed

    if uses_channels_last(model):
        model.to(memory_format=torch.channels_last)
    if data_parallel:
        net = distributed.wrap(model)
    elif distributed.is_distributed():
        raise RuntimeError(
            f"{type(model).__name__} is trained by a loop that does not support torchrun "
            "(several processes); run it in one process"
        )
    else:
        net = model
    if compile_enabled(compile):
        net.compile()
    return net


def to_memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-D batch (N, C, H, W) in channels_last if asked (see :func:`uses_channels_last`)."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class DivergenceError(RuntimeError):
    """Training diverged: the loss (or the weights) became NaN or infinite."""


ADVICE = ("A lower learning rate (lr) or gradient clipping usually helps; rebuild the model "
          "(its weights are no longer finite) before training again.")


def check_loss(values: Iterable[float], where: str, last: float | str | None) -> None:
    """Raise :class:`DivergenceError` if a logged loss is not finite.

    Args:
        values: the losses read at this logging sync (floats).
        where: when it happened, e.g. ``"in steps 51-100 (of 200)"``.
        last: the last finite loss logged before (a float, or a description such as
            ``"D 1.2, G 0.8"``), or ``None``.
    """
    if all(math.isfinite(v) for v in values):
        return
    if last is None:
        before = "no finite loss was logged before"
    else:
        before = f"the last finite loss was {last:.4g}" if isinstance(last, float) else (
            f"the last finite losses were {last}")
    raise DivergenceError(f"training diverged: the loss became NaN or infinite {where}; "
                          f"{before}. {ADVICE}")


def check_finite_weights(model: nn.Module, what: str) -> None:
    """Raise :class:`DivergenceError` if a parameter or buffer of ``model`` is not finite."""
    for name, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise DivergenceError(f"{what}: {type(model).__name__}.{name} holds NaN or infinite "
                                  f"values (training diverged). {ADVICE}")
