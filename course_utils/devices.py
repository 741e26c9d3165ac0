"""Device choice, seeding and determinism, and a report of versions.

Every notebook starts with::

    device = get_device()          # cuda, then mps, then cpu
    seed_everything(0)             # python, numpy and torch, deterministic kernels
    print(environment_report(device))
"""

from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata

import numpy as np
import torch

from course_utils.checks import check_choice

DEVICE_ENV = "COURSE_DEVICE"
"""Environment variable that forces a device (``cpu``, ``cuda`` or ``mps``)."""

_KINDS = ("cuda", "mps", "cpu")


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return True


def get_device(prefer: str | None = None) -> torch.device:
    """Return the fastest available device: CUDA, then Apple's MPS, then the CPU.

    Args:
        prefer: ``"cuda"``, ``"mps"`` or ``"cpu"`` to ask for one device; the
            environment variable ``COURSE_DEVICE`` does the same when
            ``prefer`` is ``None``.

    Raises:
        ValueError: ``prefer`` is not a known device kind.
        RuntimeError: the requested device is not available on this machine.
    """
    prefer = prefer if prefer is not None else os.environ.get(DEVICE_ENV) or None
    if prefer is not None:
        check_choice(prefer, "device", _KINDS)
        if not _available(prefer):
            raise RuntimeError(
                f"device {prefer!r} was requested but is not available here; "
                f"available: {', '.join(k for k in _KINDS if _available(k))}"
            )
        return torch.device(prefer)
    for kind in _KINDS:
        if _available(kind):
            return torch.device(kind)
    return torch.device("cpu")  # pragma: no cover - cpu is always available


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); optionally make kernels deterministic.

    With ``deterministic=True`` PyTorch is asked to use deterministic
    algorithms (``warn_only`` so that an op without a deterministic version
    still runs, with a warning), cuDNN autotuning is switched off, and
    ``CUBLAS_WORKSPACE_CONFIG`` is set for deterministic cuBLAS. On a CPU this
    makes every seeded cell of a notebook print the same numbers run to run.

    Returns:
        A ``torch.Generator`` (on the CPU) seeded with ``seed``, for code that
        wants its own stream of random numbers.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device | str):
    """Mixed precision for a training step: bfloat16 autocast on CUDA, a no-op elsewhere.

    bfloat16 has float32's range, so no gradient scaler is needed; on the CPU
    the models stay in float32 (CPU autocast is slower for the course's small
    models, and float32 keeps the notebooks' CPU outputs bit-reproducible)::

        with autocast(x.device):
            loss = model(x)
        loss.backward()
    """
    device = torch.device(device)
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_report(device: torch.device | str | None = None) -> str:
    """A few lines naming the Python and library versions and the device in use.

    Every notebook prints this in its first code cell, so that a result can
    always be traced back to the software and hardware that produced it.
    """
    device = torch.device(device) if device is not None else get_device()
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        hw = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    elif device.type == "mps":
        hw = "Apple GPU (Metal)"
    else:
        hw = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ", CPU build"
    lines = [f"python      {sys.version.split()[0]} ({platform.system()})"]
    lines.append(f"torch       {torch.__version__}{cuda}")
    for name in ["torchvision", "numpy", "scipy", "matplotlib"]:
        lines.append(f"{name:<11} {_version(name)}")
    lines.append(f"device      {device.type} ({hw})")
    return "\n".join(lines)
