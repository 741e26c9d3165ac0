"""Checkpoints that lectures can load instead of training ("load if present, else train").

A checkpoint file holds a plain dict (loadable with ``weights_only=True``, so
opening one never runs code from the file)::

    {"format": 1, "model": "VAE", "state_dict": {...}, "meta": {...}}

:func:`save_checkpoint` writes it atomically: to a temporary file in the same
folder, flushed to disk, then renamed over the target. A crash or Ctrl-C half
way leaves the previous checkpoint intact, never a truncated one.

:func:`load_checkpoint` checks the model class name and every parameter's name
and shape before loading, and says exactly what differs when the checkpoint
belongs to another architecture.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable, or was written for another architecture."""


def _check_module(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def atomic_save(payload: dict, path: str | os.PathLike) -> Path:
    """``torch.save(payload)`` to ``path`` atomically: a temporary file in the same folder,
    flushed to disk, then renamed over the target (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a checkpoint is shareable
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta) -> Path:
    """Save ``model.state_dict()`` (moved to the CPU) and ``meta`` to ``path``, atomically.

    Args:
        model: the module to save.
        path: target file (parent folders are created).
        **meta: small extra values to keep (epoch, loss history, profile...);
            they must be plain Python types or tensors so that loading with
            ``weights_only=True`` works.

    Returns:
        The path written (under ``torchrun``, only rank 0 writes; the others
        return the path without writing: every rank holds the same weights).
    """
    from course_utils import distributed
    from course_utils.resume import checkpoint_path

    _check_module(model)
    path = checkpoint_path(path)
    if not distributed.is_main():
        return path
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "model": type(model).__name__, "state_dict": state, "meta": meta}
    atomic_save(payload, path)
    return path


def _describe_mismatch(expected: dict, found: dict) -> list[str]:
    problems = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing:
        problems.append(f"missing from the checkpoint: {', '.join(missing[:5])}"
                        + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    if unexpected:
        problems.append(f"not in the model: {', '.join(unexpected[:5])}"
                        + (f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""))
    for k in expected:
        if k in found and tuple(expected[k].shape) != tuple(found[k].shape):
            problems.append(
                f"{k}: model has shape {tuple(expected[k].shape)}, "
                f"checkpoint has {tuple(found[k].shape)}"
            )
    return problems


def load_checkpoint(
    model: nn.Module, path: str | os.PathLike, map_location: str | torch.device | None = None
) -> dict:
    """Load the weights in ``path`` into ``model`` (in place) and return the saved ``meta``.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is not a course checkpoint, or it was saved
            from another architecture (class name, parameter names or shapes
            differ; the message lists the differences).
    """
    from course_utils.resume import checkpoint_path

    _check_module(model)
    path = checkpoint_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if map_location is None:
        map_location = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable checkpoint: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a course_utils checkpoint (format {FORMAT}); "
            "write checkpoints with course_utils.save_checkpoint"
        )
    name = type(model).__name__
    if payload["model"] != name:
        raise CheckpointError(
            f"{path} holds a {payload['model']} checkpoint, but the model is a {name}"
        )
    problems = _describe_mismatch(model.state_dict(), payload["state_dict"])
    if problems:
        raise CheckpointError(
            f"{path} was saved from another {name} architecture:\n  " + "\n  ".join(problems)
        )
    model.load_state_dict(payload["state_dict"])
    return payload["meta"]


def load_or_train(model: nn.Module, path: str | os.PathLike, train, retrain: bool = False) -> dict:
    """Load ``model`` from ``path`` if the file exists, else call ``train()`` and save.

    ``train`` is a function of no arguments that trains ``model`` in place and
    returns a dict of metadata (for example its loss history), which is saved
    with the weights and returned either way. A checkpoint from another
    architecture raises :class:`CheckpointError` rather than being silently
    overwritten; delete the file or pass ``retrain=True``.

    The course's training functions called inside ``train`` keep resume files in
    ``<path>.resume/`` and continue from them when the call runs again after an
    interruption; that folder is removed once the final checkpoint is written
    (:mod:`course_utils.resume`). ``$COURSE_CHECKPOINT_DIR`` moves relative paths
    (:func:`course_utils.resume.checkpoint_path`). Weights that are not finite are
    never saved: :class:`course_utils.engine.DivergenceError`.
    """
    import shutil

    from course_utils import distributed, resume
    from course_utils.engine import check_finite_weights

    path = resume.checkpoint_path(path)
    if path.exists() and not retrain:
        return load_checkpoint(model, path)
    folder = resume.resume_folder(path)
    with resume.resume_into(folder):
        meta = train() or {}
    check_finite_weights(model, f"not saving {path}")
    save_checkpoint(model, path, **meta)
    if distributed.is_main():
        shutil.rmtree(folder, ignore_errors=True)
    return meta
