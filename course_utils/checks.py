"""Argument checks that fail with a message saying what was expected and what was given.

Every public function of ``course_utils`` validates its inputs with these
helpers, so a student who passes a (28, 28) image where (N, 1, 28, 28) was
expected reads exactly that in the error, not a stack trace from deep inside
PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def check_tensor(
    x: object,
    name: str,
    shape: Sequence[int | None] | None = None,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    floating: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the given shape and dtype, and return it.

    Args:
        x: the value to check.
        name: the argument's name, used in the error message.
        shape: expected shape; ``None`` entries match any size, e.g.
            ``(None, 1, 28, 28)`` for a batch of MNIST images.
        dtype: one dtype or a sequence of allowed dtypes.
        floating: require a floating-point dtype.

    Raises:
        TypeError: ``x`` is not a tensor, or has the wrong dtype.
        ValueError: ``x`` has the wrong number of dimensions or sizes.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if shape is not None:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        if x.dim() != len(shape) or any(
            s is not None and s != got for s, got in zip(shape, x.shape, strict=True)
        ):
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if dtype is not None:
        allowed = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
        if x.dtype not in allowed:
            names = " or ".join(str(d) for d in allowed)
            raise TypeError(f"{name} must have dtype {names}, got {x.dtype}")
    return x


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Check that ``value`` is one of ``choices`` (strings) and return it."""
    if value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}; expected one of {', '.join(map(repr, choices))}"
        )
    return value  # type: ignore[return-value]


def check_positive(value: float, name: str, integer: bool = False) -> float:
    """Check that ``value`` is a positive number (a positive int if ``integer``)."""
    kind = "int" if integer else "number"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not value > 0:
        raise ValueError(f"{name} must be a positive {kind}, got {value!r}")
    return value


def check_values(x: torch.Tensor, name: str, low: float | None = None,
                 high: float | None = None, hint: str = "") -> torch.Tensor:
    """Check that a floating-point tensor holds only finite values in [low, high]; return it.

    One pass over ``x`` (``torch.aminmax`` propagates NaN, so it also finds
    non-finite values) and one host sync: call it once per training run, not per
    step. ``hint`` is appended to the range error (e.g. how to rescale).

    Raises:
        ValueError: ``x`` is empty, holds NaN or infinite values, or values
            outside [low, high].
    """
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}): there is nothing to train on")
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        bad = int((~torch.isfinite(x.detach())).sum())
        raise ValueError(
            f"{name} must hold finite values, got {bad} NaN or infinite value(s) of {x.numel()}"
        )
    if (low is not None and lo < low) or (high is not None and hi > high):
        a, b = ("-inf" if low is None else f"{low:g}"), ("inf" if high is None else f"{high:g}")
        want = f"[{a}, {b}]"
        raise ValueError(
            f"{name} must hold values in {want}, got values in [{lo:g}, {hi:g}]"
            + (f"; {hint}" if hint else "")
        )
    return x


def check_ids(t: torch.Tensor, name: str, size: int, what: str, allow: int | None = None) -> None:
    """Check that integer ids ``t`` lie in 0..size-1 (``allow``: one more accepted value).

    ``what`` names the limit, e.g. ``"vocab_size"``. One host sync; call once per run.

    Raises:
        ValueError: some id is outside 0..size-1 (and is not ``allow``).
    """
    if t.numel() == 0:
        return
    v = t if allow is None else t[t != allow]
    if v.numel() == 0:
        return
    lo, hi = (int(a) for a in torch.aminmax(v))
    if lo < 0 or hi >= size:
        extra = f" (or {allow}, the padding)" if allow is not None else ""
        raise ValueError(
            f"{name} must lie in 0..{size - 1}{extra} (the model's {what} is {size}), "
            f"got values in {lo}..{hi}"
        )


def check_min_rows(n: int, name: str, need: int, why: str) -> None:
    """Check that a data set of ``n`` rows has at least ``need`` (``why`` says what for)."""
    if n < need:
        raise ValueError(f"{name} has {n} example(s), fewer than {need} ({why})")
