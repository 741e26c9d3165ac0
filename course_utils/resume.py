"""Resumable training: a long run interrupted (Ctrl-C, a killed kernel, a Colab disconnect)
continues from its last interval checkpoint when the same call runs again.

Where the files live. :func:`course_utils.load_or_train` (and ``load_or_train_vae``,
``load_or_train_gan``, ``load_or_train_classifier``, which call it) gives the training
functions called inside it a folder beside the final checkpoint::

    checkpoints/05_vae_full.pt                      the final checkpoint
    checkpoints/05_vae_full.pt.resume/              its resume folder
        train_vae-3f2a9c1b7d4e.pt                   one run's state, keyed by its configuration

A training function called on its own writes resume files only when given
``resume=FOLDER``. The environment variable ``COURSE_CHECKPOINT_DIR`` moves the whole
checkpoints folder (final checkpoints and resume folders; see :func:`checkpoint_path`):
on Colab, point it at Google Drive so that both survive a disconnect.

What is saved, every ``COURSE_RESUME_EVERY`` seconds (default 60, and at least 100 times
the time one save took, so saving costs well under 1% of training; 0 saves at every
logging sync, for tests): the model(s), the
optimiser(s), the learning-rate schedule(s), the random generators' states (torch's
global CPU and GPU generators and the function's own), the step or epoch done, the
history, and what the loop carries between steps. Files are written atomically by rank 0
(:func:`course_utils.checkpoint.atomic_save`) at a logging sync, only while the weights
are finite, and loaded with ``weights_only=True`` by every rank. A run shorter than the
interval (the smoke profile) writes none.

The file name holds a hash of the configuration: the function, its hyperparameters,
the model's architecture (``repr`` and parameter shapes) and the data's shapes, dtypes
and a few of their values. A changed configuration therefore never continues another's
state: it starts afresh and says so. Resuming prints ``resuming from step N of M (file)``;
the normal path prints nothing. On a CPU a resumed run ends with exactly the weights and
history (timings aside) of an uninterrupted one. ``load_or_train`` removes the resume
folder once the final checkpoint is written; with an explicit ``resume=`` folder, the
function removes its own file when it finishes.

State-dict keys are stored without ``torch.compile``'s ``_orig_mod.`` prefix, so a
compiled model resumes an eager run's state and vice versa.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from course_utils import distributed
from course_utils.checkpoint import atomic_save

CHECKPOINT_ENV = "COURSE_CHECKPOINT_DIR"
"""Environment variable: a folder that replaces the checkpoints folder of relative paths."""

EVERY_ENV = "COURSE_RESUME_EVERY"
"""Environment variable: seconds between resume checkpoints (default 60; 0 = every sync)."""

DEFAULT_EVERY_S = 60.0
FORMAT = 1
_PREFIX = "_orig_mod."
_FOLDER: contextvars.ContextVar[Path | None] = contextvars.ContextVar("resume_folder",
                                                                     default=None)


def checkpoint_path(path: str | os.PathLike) -> Path:
    """Where a checkpoint file lives: ``path`` itself, or under ``$COURSE_CHECKPOINT_DIR``.

    With the variable set, a relative path moves into that folder, keeping what follows
    its last ``checkpoints`` folder (``../checkpoints/07_gru_full.pt`` ->
    ``$COURSE_CHECKPOINT_DIR/07_gru_full.pt``), or else its file name. Absolute paths
    are left alone.
    """
    path = Path(path)
    root = os.environ.get(CHECKPOINT_ENV)
    if not root or path.is_absolute():
        return path
    parts = path.parts
    rel = Path(path.name)
    if "checkpoints" in parts[:-1]:
        rel = Path(*parts[len(parts) - parts[::-1].index("checkpoints"):])
    return Path(root).expanduser().absolute() / rel


def resume_folder(checkpoint: str | os.PathLike) -> Path:
    """The resume folder of a final checkpoint: ``<checkpoint>.resume`` beside it."""
    path = checkpoint_path(checkpoint)
    return path.with_name(path.name + ".resume")


@contextlib.contextmanager
def resume_into(folder: str | os.PathLike | None) -> Iterator[None]:
    """Within the block, training functions without ``resume=`` keep resume files in ``folder``."""
    token = _FOLDER.set(None if folder is None else Path(folder))
    try:
        yield
    finally:
        _FOLDER.reset(token)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile``'s and DDP's wrappers (``model`` itself if none)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s state on the CPU, keys without ``_orig_mod.`` (compiled submodules)."""
    return {k.replace(_PREFIX, ""): v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def load_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a :func:`state_dict` into ``model``, compiled or not."""
    inner = unwrap(model)
    inner.load_state_dict({k: state[k.replace(_PREFIX, "")] for k in inner.state_dict()})


def fingerprint(t: torch.Tensor | None) -> list | None:
    """A tensor's shape, dtype and up to 64 evenly spaced values (no reduction, no RNG)."""
    if t is None:
        return None
    flat = t.detach().reshape(-1)
    n = len(flat)
    k = min(n, 64)  # integer positions: a float linspace rounds past the end for large n
    idx = (torch.arange(k) * max(n - 1, 0) // max(k - 1, 1)).to(flat.device)
    return [list(t.shape), str(t.dtype), flat[idx].cpu().tolist()]


def config_hash(kind: str, modules: Mapping[str, nn.Module], settings: Mapping) -> str:
    """12 hex digits identifying a configuration: function, architecture, data, settings."""
    desc = {
        "kind": kind,
        "modules": {n: [repr(unwrap(m)), [(k, list(v.shape), str(v.dtype))
                                          for k, v in state_dict(m).items()]]
                    for n, m in modules.items()},
        "settings": {k: fingerprint(v) if isinstance(v, torch.Tensor) else v
                     for k, v in settings.items()},
    }
    text = json.dumps(desc, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    if "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"])


class Resumer:
    """One training run's resume file, ``<folder>/<kind>-<config hash>.pt``.

    A training loop builds one after its checks and optimisers, calls :meth:`restore`
    before the first step, :meth:`save` at its logging syncs, and :meth:`finish` at the
    end. Without a folder (no ``resume=`` and no :func:`resume_into` block) every method
    does nothing.

    Args:
        kind: the training function's name.
        folder: the resume folder (``None``: the one :func:`resume_into` set, if any).
        modules, optimizers, schedulers: what to save and restore, by name.
        generators: the loop's own ``torch.Generator`` s (``None`` entries are skipped).
        settings: every hyperparameter and data tensor that defines the run (hashed).
        total: the run's length in ``unit`` s (steps or epochs).
    """

    def __init__(self, kind: str, folder, modules: Mapping[str, nn.Module],
                 optimizers: Mapping | None = None, schedulers: Mapping | None = None,
                 generators: Sequence[torch.Generator | None] = (),
                 settings: Mapping | None = None, total: int = 0, unit: str = "step"):
        self.owned = folder is not None
        folder = Path(folder) if folder is not None else _FOLDER.get()
        self.enabled = folder is not None
        if not self.enabled:
            return
        self.kind, self.modules, self.optimizers = kind, dict(modules), dict(optimizers or {})
        self.schedulers, self.total, self.unit = dict(schedulers or {}), total, unit
        self.generators = list(generators)
        self.device = next(next(iter(self.modules.values())).parameters()).device
        self.path = folder / f"{kind}-{config_hash(kind, self.modules, settings or {})}.pt"
        self.every = float(os.environ.get(EVERY_ENV, DEFAULT_EVERY_S))
        self.last, self.cost = time.perf_counter(), 0.0

    def restore(self) -> dict | None:
        """Load the saved state, if this configuration has one; return it, else ``None``.

        Returns:
            ``{"done": units done, "history": ..., "extra": ...}`` (what :meth:`save` got).
        """
        if not self.enabled:
            return None
        if not self.path.is_file():
            others = sorted(self.path.parent.glob(f"{self.kind}-*.pt"))
            if others and distributed.is_main():
                print(f"starting afresh: the saved state belongs to another configuration "
                      f"({others[0]})")
            return None
        p = torch.load(self.path, map_location="cpu", weights_only=True)
        for name, m in self.modules.items():
            load_state_dict(m, p["modules"][name])
        for name, o in self.optimizers.items():
            o.load_state_dict(p["optimizers"][name])
        for name, s in self.schedulers.items():
            s.load_state_dict(p["schedulers"][name])
        for g, state in zip(self.generators, p["generators"], strict=True):
            if g is not None:
                g.set_state(state)
        _set_rng_state(p["rng"], self.device)
        if distributed.is_main():
            print(f"resuming from {self.unit} {p['done']} of {self.total} ({self.path})")
        self.last = time.perf_counter()
        return p

    def save(self, done: int, history: dict, extra=None) -> None:
        """At a logging sync after ``done`` units: write the state if the interval has passed.

        Skipped at the end (the final checkpoint follows) and while any weight is not
        finite (the divergence check stops the run at its next sync).
        """
        if not self.enabled or done >= self.total:
            return
        start = time.perf_counter()
        if self.every and start - self.last < max(self.every, 100 * self.cost):
            return
        if not all(bool(torch.isfinite(p).all()) for m in self.modules.values()
                   for p in m.parameters()):
            return
        if distributed.is_main():
            atomic_save({
                "format": FORMAT, "kind": self.kind, "done": done, "total": self.total,
                "modules": {n: state_dict(m) for n, m in self.modules.items()},
                "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
                "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
                "generators": [None if g is None else g.get_state() for g in self.generators],
                "rng": _rng_state(self.device),
                "history": history, "extra": extra,
            }, self.path)
        self.last = time.perf_counter()
        self.cost = self.last - start

    def finish(self) -> None:
        """At the end of a run given ``resume=``: remove its file (and the folder if empty)."""
        if self.enabled and self.owned and distributed.is_main():
            self.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()
