"""Argument checks that fail with a message saying what was expected and what was given.

Every public function of ``course_utils`` validates its inputs with these
helpers, so a student who passes a (28, 28) image where (N, 1, 28, 28) was
expected reads exactly that in the error, not a stack trace from deep inside
PyTorch.
"""

from __future__ import annotations

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
