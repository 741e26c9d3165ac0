"""The course's bundled datasets, checked by sha256, and batches sliced on the device.

Datasets (files in the repository's ``data/`` folder; provenance in
``data/README.md``):

========== ============================ =====================================================
name       loader                       returns
========== ============================ =====================================================
mnist      :func:`load_mnist`           images (N, 1, 28, 28) float32 in [0, 1], labels (N,) int64
names      :func:`load_names`           list of 5,163 lowercase first names (and their list)
shakespeare :func:`load_shakespeare`    one str of 1,271,816 characters, ten plays
========== ============================ =====================================================

Nothing is ever downloaded. The folder is found by, in order: the environment
variable ``COURSE_DATA_DIR``; the ``data/`` folder next to the installed
package (a git clone); ``data/`` or ``../data/`` under the working directory.

:func:`batches` keeps a whole dataset on the device (MNIST is 188 MB as float32,
small for any GPU) and yields shuffled mini-batches by indexing there: no
DataLoader, no worker processes, no host-to-device copy per step.

:func:`export_mnist_idx` writes the bundled MNIST as the four raw IDX files that
``torchvision.datasets.MNIST(root, download=False)`` reads, for comparisons with
the usual torchvision pipeline (lecture 05, section 4; ``python -m course_utils.bench``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from course_utils.checks import check_choice, check_positive, check_tensor

DATA_ENV = "COURSE_DATA_DIR"


class DataFileError(RuntimeError):
    """A bundled data file is missing, unreadable or does not match its sha256."""


@dataclass(frozen=True)
class DataFile:
    filename: str
    sha256: str
    description: str


DATA_FILES: dict[str, DataFile] = {
    "mnist": DataFile(
        "mnist.npz",
        "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",
        "MNIST digits, 60,000 train + 10,000 test, uint8",
    ),
    "names": DataFile(
        "names.txt",
        "c552ee4f4b29da93458a2f23adddafd582b5a17fa689346283f7ef07ea2db402",
        "5,163 US first names (1990 census lists), lowercase",
    ),
    "shakespeare": DataFile(
        "shakespeare.txt",
        "9fbf17ef2e60cc4349821a79d68fedf197ad225a0d9df28c1f44306df47eb76d",
        "ten Shakespeare plays, plain ASCII",
    ),
}

N_FEMALE_NAMES = 4275
"""names.txt holds the 1990 census female list (4,275 names) first, then the
male names that were not already in it (888 names)."""


def dataset_names() -> tuple[str, ...]:
    """The names accepted by :func:`load_dataset` and :func:`data_path`."""
    return tuple(DATA_FILES)


def data_dir() -> Path:
    """The folder holding the bundled data files (see the module docstring for the search order)."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    candidates = [
        Path(__file__).resolve().parent.parent / "data",
        Path.cwd() / "data",
        Path.cwd().parent / "data",
    ]
    for c in candidates:
        if (c / DATA_FILES["mnist"].filename).exists() or (c / "README.md").exists():
            return c
    return candidates[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_path(name: str, verify: bool = True) -> Path:
    """Path of the bundled file for dataset ``name``, checked against its sha256.

    Raises:
        ValueError: ``name`` is not one of :func:`dataset_names`.
        DataFileError: the file is missing, or its sha256 is not the recorded one.
    """
    check_choice(name, "dataset", dataset_names())
    spec = DATA_FILES[name]
    path = data_dir() / spec.filename
    if not path.is_file():
        raise DataFileError(
            f"data file for {name!r} not found at {path}. The course ships it in the "
            f"repository's data/ folder; run from a clone of the repository or set "
            f"${DATA_ENV} to the folder holding {spec.filename}."
        )
    if verify:
        got = _sha256(path)
        if got != spec.sha256:
            raise DataFileError(
                f"{path} is corrupted or not the expected file: sha256 expected "
                f"{spec.sha256}, got {got}. Restore it with `git checkout -- data/{spec.filename}`."
            )
    return path


def load_mnist(
    split: str = "train",
    device: torch.device | str | None = None,
    limit: int | None = None,
    flatten: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST as float tensors ready for a device.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000).
        device: where to put the tensors (default: the CPU).
        limit: keep only the first ``limit`` images (the files keep the
            original MNIST order).
        flatten: return images as (N, 784) instead of (N, 1, 28, 28).

    Returns:
        ``(images, labels)``: images float32 in [0, 1], shape (N, 1, 28, 28)
        or (N, 784); labels int64, shape (N,), values 0..9.
    """
    check_choice(split, "MNIST split", ("train", "test"))
    if limit is not None:
        check_positive(limit, "limit", integer=True)
    path = data_path("mnist")
    try:
        with np.load(path) as f:
            x = f[f"x_{split}"][:limit]
            y = f[f"y_{split}"][:limit]
    except (OSError, ValueError, KeyError) as e:  # pragma: no cover - sha256 guards this
        raise DataFileError(f"could not read {path}: {e}") from e
    images = torch.from_numpy(x).float().div_(255.0).unsqueeze(1)
    if flatten:
        images = images.reshape(len(images), -1)
    labels = torch.from_numpy(y.astype(np.int64))
    return images.to(device or "cpu"), labels.to(device or "cpu")


MNIST_IDX_SPLITS = {"train": "train", "test": "t10k"}
"""The file-name prefix torchvision's MNIST uses for each split."""


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array (1 to 3 dimensions) in the IDX format MNIST is distributed in.

    The format: a big-endian int32 magic number ``0x0800 + ndim`` (0x08 = unsigned
    bytes), each dimension as a big-endian int32, then the raw bytes in C order.
    The file is written to a temporary name and renamed, so a reader never sees
    half a file.
    """
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 3:
        raise ValueError(f"write_idx needs a uint8 array with 1 to 3 dimensions, got "
                         f"dtype {array.dtype} and shape {array.shape}")
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(np.array([0x800 + array.ndim, *array.shape], dtype=">i4").tobytes())
        f.write(array.tobytes())
    os.replace(tmp, path)
    return path


def export_mnist_idx(root: str | Path, limit: int | None = None) -> Path:
    """Write the bundled MNIST as ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``.

    ``torchvision.datasets.MNIST(root, train=..., download=False)`` then reads the
    same images and labels as :func:`load_mnist` (as uint8 PIL images; ``ToTensor``
    gives back ``load_mnist``'s floats exactly). Files that already hold the right
    number of bytes are kept, so a folder under the git-ignored ``checkpoints/``
    works as a cache (lecture 05 uses ``checkpoints/torchvision_mnist``).

    Args:
        root: the folder to pass to torchvision as ``root``.
        limit: write only the first ``limit`` images of each split.

    Returns:
        ``root`` as a Path.
    """
    if limit is not None:
        check_positive(limit, "limit", integer=True)
    root = Path(root)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    with np.load(data_path("mnist")) as f:
        for split, prefix in MNIST_IDX_SPLITS.items():
            for kind, key, header in (("images-idx3", "x", 16), ("labels-idx1", "y", 8)):
                path = raw / f"{prefix}-{kind}-ubyte"
                array = f[f"{key}_{split}"][:limit]
                if not path.is_file() or path.stat().st_size != header + array.nbytes:
                    write_idx(path, array.astype(np.uint8, copy=False))
    return root


def load_names(with_list: bool = False) -> list[str] | tuple[list[str], list[str]]:
    """The 5,163 first names, lowercase a-z.

    Args:
        with_list: also return, for each name, the census list it comes from:
            ``"female"`` (the first 4,275) or ``"male"`` (the 888 male names
            that are not also in the female list).
    """
    names = data_path("names").read_text(encoding="ascii").split()
    if not with_list:
        return names
    lists = ["female" if i < N_FEMALE_NAMES else "male" for i in range(len(names))]
    return names, lists


def load_shakespeare() -> str:
    """The ten plays as one ASCII string (1,271,816 characters, 80 distinct)."""
    return data_path("shakespeare").read_text(encoding="ascii")


def load_dataset(name: str, **kwargs):
    """Load a bundled dataset by name: ``"mnist"``, ``"names"`` or ``"shakespeare"``.

    Keyword arguments go to the dataset's loader.
    """
    check_choice(name, "dataset", dataset_names())
    loader = {"mnist": load_mnist, "names": load_names, "shakespeare": load_shakespeare}[name]
    return loader(**kwargs)


def batches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield mini-batches of in-memory tensors, sliced on the tensors' own device.

    All tensors must share their first dimension (N) and device. One epoch::

        for xb, yb in batches(x_train, y_train, batch_size=128):
            ...   # xb: (B, 1, 28, 28), yb: (B,), on x_train's device

    The permutation is drawn on the data's device with ``generator`` (or the
    global seed), so batches are reproducible after :func:`seed_everything`.

    Args:
        *tensors: one or more tensors of shape (N, ...).
        batch_size: B, a positive int.
        shuffle: draw a new random order (else keep the stored order).
        drop_last: skip the last batch if it has fewer than B rows.
        generator: a ``torch.Generator`` on the data's device.
    """
    if not tensors:
        raise ValueError("batches() needs at least one tensor")
    check_positive(batch_size, "batch_size", integer=True)
    for i, t in enumerate(tensors):
        check_tensor(t, f"tensors[{i}]")
        if t.dim() == 0:
            raise ValueError(f"tensors[{i}] must have a first (batch) dimension, got a scalar")
    n, device = len(tensors[0]), tensors[0].device
    for i, t in enumerate(tensors[1:], start=1):
        if len(t) != n:
            raise ValueError(
                f"all tensors must have the same first dimension; tensors[0] has {n}, "
                f"tensors[{i}] has {len(t)}"
            )
        if t.device != device:
            raise ValueError(
                f"all tensors must be on one device; tensors[0] is on {device}, "
                f"tensors[{i}] is on {t.device}"
            )
    order = torch.randperm(n, device=device, generator=generator) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:  # stored order: plain views, no copy
            yield tuple(t[start : start + batch_size] for t in tensors)
        else:
            idx = order[start : start + batch_size]
            yield tuple(t[idx] for t in tensors)
