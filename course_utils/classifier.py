"""A small MNIST classifier that measures what generated digits are.

Lecture 03 (``notebooks/03_gans_mnist.ipynb``, "What are the samples?")
trains it (or loads it from a checkpoint) and uses it to score GAN samples:
the share of a conditional GAN's samples classified as the requested digit,
and the class histogram of an unconditional GAN's samples. Lecture 09 reuses
its penultimate features for FID and its probabilities for the Inception Score.

Architecture (206,922 parameters, >= 98% test accuracy after one or two
epochs on a CPU)::

    (N, 1, 28, 28) -> conv 3x3 (16) -> ReLU -> maxpool -> 14x14
                   -> conv 3x3 (32) -> ReLU -> maxpool -> 7x7
                   -> flatten -> linear (128) -> ReLU = features (N, 128)
                   -> linear (10) = logits (N, 10)
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from course_utils import distributed
from course_utils.checkpoint import load_or_train
from course_utils.checks import check_ids, check_positive, check_tensor, check_values
from course_utils.data import batches, load_mnist
from course_utils.devices import autocast
from course_utils.engine import (
    check_loss,
    make_optimizer,
    prepare_model,
    to_memory_format,
    uses_channels_last,
)
from course_utils.resume import Resumer

IMAGE_SHAPE = (1, 28, 28)


class MNISTClassifier(nn.Module):
    """A two-convolution CNN: images (N, 1, 28, 28) in [0, 1] -> logits (N, 10)."""

    def __init__(self, width: int = 16, n_features: int = 128):
        super().__init__()
        check_positive(width, "width", integer=True)
        check_positive(n_features, "n_features", integer=True)
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, n_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(n_features, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, n_features) of images (N, 1, 28, 28) in [0, 1]."""
        check_tensor(x, "images", shape=(None, *IMAGE_SHAPE), floating=True)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _images(model: nn.Module, images: torch.Tensor, training: bool = True) -> torch.Tensor:
    """Check images (N, 1, 28, 28) once and move them to the model's device.

    Finite values always; in [0, 1] for training (predicting on other images is allowed:
    lecture 03 shows what [-1, 1] inputs do to the accuracy).
    """
    check_tensor(images, "images", shape=(None, *IMAGE_SHAPE), floating=True)
    low, high = (0, 1) if training else (None, None)
    return check_values(images.to(next(model.parameters()).device), "images", low, high, hint=(
        "the classifier reads pixel intensities in [0, 1], as load_mnist gives them: "
        "divide bytes by 255, or use (x + 1) / 2 for images in [-1, 1]"))


def train_classifier(
    model: MNISTClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 2,
    batch_size: int = 128,
    lr: float = 2e-3,
    progress: bool = True,
    compile: bool | None = None,
    resume=None,
) -> dict:
    """Train ``model`` with Adam and cross-entropy on images (N, 1, 28, 28), labels (N,).

    The engine of :mod:`course_utils.engine` (fused Adam and channels_last on CUDA,
    ``compile`` if asked); data-parallel under ``torchrun`` (:mod:`course_utils.distributed`).
    The data are checked once (images finite and in [0, 1], labels in 0..9) and moved to
    the model's device once; a NaN or infinite loss stops the run at the next sync
    (:class:`course_utils.engine.DivergenceError`). ``resume``: a folder for resume files
    (``None``: the one :func:`course_utils.load_or_train` sets, else none); an interrupted
    run continues from the last epoch saved (:mod:`course_utils.resume`).

    Returns ``{"loss": [...]}``, the training loss averaged over every 50 steps.
    """
    check_positive(epochs, "epochs", integer=True)
    check_positive(batch_size, "batch_size", integer=True)
    check_positive(lr, "lr")
    images = _images(model, images)
    check_tensor(labels, "labels", shape=(len(images),), dtype=torch.int64)
    labels = labels.to(images.device)
    check_ids(labels, "labels", 10, "number of classes")
    opt = make_optimizer("adam", model.parameters(), lr=lr)
    net = prepare_model(model, compile)  # DDP under torchrun, compiled if asked; else model
    channels_last = uses_channels_last(model)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * -(-len(images) // batch_size)
    )
    history = {"loss": []}
    total, count, done = torch.zeros((), device=images.device), 0, 0
    per_epoch = -(-len(images) // batch_size)
    res = Resumer("train_classifier", resume, {"model": model}, {"opt": opt}, {"sched": sched},
                  total=epochs, unit="epoch", settings=dict(
                      images=images, labels=labels, epochs=epochs, batch_size=batch_size, lr=lr))
    saved = res.restore()
    if saved is not None:
        history, done = saved["history"], saved["done"]
        total, count = saved["extra"]["total"].to(images.device), saved["extra"]["count"]
    model.train()
    bar = tqdm(total=epochs * per_epoch, initial=done * per_epoch,
               disable=not (progress and distributed.is_main()), leave=False, desc="classifier")
    step = done * per_epoch
    for epoch in range(done, epochs):
        for xb, yb in batches(images, labels, batch_size=batch_size):
            n_global = len(xb)
            xb, yb = distributed.shard(xb, yb)  # this process's rows (all without torchrun)
            with autocast(xb.device):
                logits = net(to_memory_format(xb, channels_last))
            loss = F.cross_entropy(logits.float(), yb)
            opt.zero_grad(set_to_none=True)
            distributed.scale_loss(loss, len(xb), n_global).backward()
            opt.step()
            sched.step()
            total += loss.detach() * (len(xb) / n_global)
            count += 1
            step += 1
            if count == 50:  # one sync per 50 steps
                mean = float(distributed.all_reduce_sum(total) / count)
                check_loss([mean], f"in steps {step - 49}-{step} (epoch {epoch + 1})",
                           history["loss"][-1] if history["loss"] else None)
                history["loss"].append(mean)
                total, count = torch.zeros((), device=images.device), 0
            bar.update()
        res.save(epoch + 1, history, {"total": total, "count": count})
    bar.close()
    if count:  # the last steps are not logged, but must not have diverged
        last = history["loss"][-1] if history["loss"] else None
        check_loss([float(distributed.all_reduce_sum(total.clone()) / count)],
                   f"in steps {step - count + 1}-{step}", last)
    model.eval()
    res.finish()
    return history


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted digits (N,) int64 for images (N, 1, 28, 28) in [0, 1] (moved to the model).

    Images must be finite and not empty; values outside [0, 1] are scored as given.
    """
    images = _images(model, images, training=False)
    was_training = model.training
    model.eval()
    out = torch.cat(
        [model(xb).argmax(1) for (xb,) in batches(images, batch_size=batch_size, shuffle=False)]
    )
    model.train(was_training)
    return out


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of ``images`` (N, 1, 28, 28) whose predicted digit equals ``labels`` (N,)."""
    check_tensor(labels, "labels", shape=(len(images),), dtype=torch.int64)
    pred = predict(model, images)
    return float((pred == labels.to(pred.device)).float().mean())


def class_histogram(predictions: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """Share of predictions (N,) in each class: (n_classes,) float, sums to 1."""
    check_tensor(predictions, "predictions", shape=(None,), dtype=torch.int64)
    if len(predictions) == 0:
        raise ValueError("predictions is empty")
    counts = torch.bincount(predictions.cpu(), minlength=n_classes).float()
    return counts / counts.sum()


def load_or_train_classifier(
    path: str | os.PathLike,
    device=None,
    epochs: int = 2,
    n_train: int | None = None,
    n_test: int | None = None,
    progress: bool = True,
    retrain: bool = False,
) -> tuple[MNISTClassifier, dict]:
    """The course's MNIST classifier: loaded from ``path`` if it exists, else trained and saved.

    Args:
        path: the checkpoint file (e.g. ``../checkpoints/mnist_classifier_full.pt``).
        device: where the model and the data go.
        epochs, n_train: the training budget (``n_train`` limits the training images).
        n_test: test images used for the accuracy stored with the checkpoint (default all).

    Returns:
        ``(model, meta)`` with ``meta = {"loss": [...], "test_accuracy": float}``;
        the model is in eval mode on ``device``.
    """
    device = torch.device(device or "cpu")
    model = MNISTClassifier().to(device)

    def train():
        x, y = load_mnist("train", device=device, limit=n_train)
        hist = train_classifier(model, x, y, epochs=epochs, progress=progress)
        xt, yt = load_mnist("test", device=device, limit=n_test)
        return {"loss": hist["loss"], "test_accuracy": accuracy(model, xt, yt)}

    meta = load_or_train(model, path, train, retrain=retrain)
    model.eval()
    return model, meta
