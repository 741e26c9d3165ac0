"""Figures the lectures share: image grids, 2-D scatter and densities, training curves.

Every function draws on a matplotlib ``Axes`` (a new figure when ``ax`` is
None) and returns it, so figures can be combined with ``plt.subplots``.
Call :func:`use_course_style` once per notebook for readable, small figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torchvision.utils import make_grid

from course_utils.checks import check_positive, check_tensor


def in_jupyter_kernel() -> bool:
    """True when this code runs in a Jupyter kernel (JupyterLab, Colab, papermill, nbval)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def use_course_style(dpi: int = 72) -> None:
    """Small, projector-friendly defaults (modest resolution keeps notebooks light).

    In a Jupyter kernel it also selects the inline backend, whatever ``MPLBACKEND``
    says: under a non-interactive backend such as ``Agg`` (which scripts and CI often
    export) ``plt.show()`` would draw nothing into the notebook, and the committed
    lectures would silently lose their figures. Outside a kernel the backend is kept.
    """
    if in_jupyter_kernel():
        from IPython import get_ipython

        get_ipython().run_line_magic("matplotlib", "inline")
    plt.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": dpi,
            "figure.figsize": (6, 4),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 11,
        }
    )


def _axes(ax, figsize=None):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def image_grid(
    images: torch.Tensor,
    nrow: int = 8,
    image_shape: Sequence[int] = (1, 28, 28),
    value_range: tuple[float, float] | None = (0.0, 1.0),
    padding: int = 2,
) -> torch.Tensor:
    """Arrange images into one grid image with ``torchvision.utils.make_grid``.

    Args:
        images: (N, C, H, W), or (N, C*H*W) flat images reshaped with ``image_shape``.
        nrow: images per row.
        value_range: the range mapped to black..white (``(-1, 1)`` for Tanh
            outputs); ``None`` rescales each grid to its own min..max.

    Returns:
        (3, H', W') float tensor in [0, 1] on the CPU.
    """
    check_tensor(images, "images", floating=True)
    check_positive(nrow, "nrow", integer=True)
    if images.dim() == 2:
        if images.shape[1] != int(np.prod(image_shape)):
            raise ValueError(
                f"flat images of shape (N, {images.shape[1]}) cannot be reshaped to "
                f"image_shape {tuple(image_shape)}"
            )
        images = images.reshape(len(images), *image_shape)
    if images.dim() != 4:
        raise ValueError(
            f"images must have shape (N, C, H, W) or (N, C*H*W), got {tuple(images.shape)}"
        )
    if len(images) == 0:
        raise ValueError("images is empty: nothing to draw")
    images = images.detach().float().cpu()
    return make_grid(
        images,
        nrow=nrow,
        padding=padding,
        normalize=True,
        value_range=value_range,
        pad_value=1.0,
    )


def show_images(
    images: torch.Tensor,
    nrow: int = 8,
    title: str | None = None,
    ax=None,
    image_shape: Sequence[int] = (1, 28, 28),
    value_range: tuple[float, float] | None = (0.0, 1.0),
):
    """Draw a grid of images (see :func:`image_grid` for the arguments)."""
    grid = image_grid(images, nrow=nrow, image_shape=image_shape, value_range=value_range)
    n = len(images)
    rows = -(-n // nrow)
    ax = _axes(ax, figsize=(min(nrow, n) * 0.9 + 0.4, rows * 0.9 + 0.4))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def scatter_2d(
    points,
    labels=None,
    ax=None,
    title: str | None = None,
    s: float = 6.0,
    alpha: float = 0.6,
    label_names: Mapping[int, str] | None = None,
):
    """Scatter (N, 2) points, coloured by integer ``labels`` (N,) when given."""
    pts = _to_numpy(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    ax = _axes(ax)
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, alpha=alpha)
    else:
        lab = _to_numpy(labels)
        if lab.shape != (len(pts),):
            raise ValueError(f"labels must have shape ({len(pts)},), got {lab.shape}")
        for k in np.unique(lab):
            name = label_names[int(k)] if label_names else f"y={int(k)}"
            m = lab == k
            ax.scatter(pts[m, 0], pts[m, 1], s=s, alpha=alpha, label=name)
        ax.legend(markerscale=2, fontsize=9)
    ax.set_aspect("equal")  # a box of equal units; set_xlim/set_ylim still work afterwards
    if title:
        ax.set_title(title)
    return ax


def grid_2d(xlim: tuple[float, float], ylim: tuple[float, float], n: int = 200):
    """A regular n x n grid: returns ``(xx, yy, points)`` with points (n*n, 2) float32."""
    check_positive(n, "n", integer=True)
    xs = torch.linspace(*xlim, n)
    ys = torch.linspace(*ylim, n)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return xx, yy, torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


def plot_function_2d(
    fn: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float] = (-3, 3),
    ylim: tuple[float, float] = (-3, 3),
    n: int = 200,
    ax=None,
    levels: int | Sequence[float] = 20,
    cmap: str = "viridis",
    contour_at: Sequence[float] | None = None,
    colorbar: bool = True,
    title: str | None = None,
):
    """Filled contours of a function on the plane: a density, or a classifier's p(y=1|x).

    Args:
        fn: maps points (M, 2) float32 to values (M,).
        contour_at: values to draw as black lines (``[0.5]`` draws a decision boundary).
    """
    xx, yy, pts = grid_2d(xlim, ylim, n)
    with torch.no_grad():
        z = fn(pts)
    z = _to_numpy(z)
    if z.shape != (len(pts),):
        raise ValueError(f"fn must map (M, 2) points to (M,) values; got shape {z.shape}")
    z = z.reshape(n, n)
    ax = _axes(ax)
    cs = ax.contourf(xx.numpy(), yy.numpy(), z, levels=levels, cmap=cmap)
    if contour_at is not None:
        ax.contour(xx.numpy(), yy.numpy(), z, levels=list(contour_at), colors="k", linewidths=1.5)
    if colorbar:
        plt.colorbar(cs, ax=ax)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_samples_density(
    samples,
    xlim: tuple[float, float] = (-3, 3),
    ylim: tuple[float, float] = (-3, 3),
    bins: int = 100,
    ax=None,
    cmap: str = "magma",
    title: str | None = None,
):
    """A 2-D histogram of (N, 2) samples, normalised to a density (shows where mass sits)."""
    pts = _to_numpy(samples)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {pts.shape}")
    ax = _axes(ax)
    ax.hist2d(pts[:, 0], pts[:, 1], bins=bins, range=[xlim, ylim], density=True, cmap=cmap)
    ax.set_aspect("equal")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def plot_curves(
    history: Mapping[str, Sequence[float]],
    ax=None,
    xlabel: str = "step",
    ylabel: str = "loss",
    smooth: int = 1,
    logy: bool = False,
    title: str | None = None,
    x: Sequence[float] | None = None,
    logx: bool = False,
    marker: str | None = None,
):
    """Training curves: one line per key of ``history``, e.g. ``{"D": [...], "G": [...]}``.

    Args:
        smooth: width of a moving average (1 = raw values).
        x: the x-value of each point (default 0, 1, 2, ...), shared by all curves.
        logx, logy: logarithmic axes.
        marker: a matplotlib marker for the points (e.g. ``"o"`` for few points).
    """
    check_positive(smooth, "smooth", integer=True)
    if not history:
        raise ValueError("history is empty: nothing to plot")
    ax = _axes(ax)
    for name, values in history.items():
        v = np.asarray([float(x) for x in values])
        if v.ndim != 1 or len(v) == 0:
            raise ValueError(f"history[{name!r}] must be a non-empty sequence of numbers")
        xs = np.arange(len(v)) if x is None else np.asarray(x, dtype=float)
        if xs.shape != v.shape:
            raise ValueError(f"x has {len(xs)} values but history[{name!r}] has {len(v)}")
        if smooth > 1 and len(v) >= smooth:
            v = np.convolve(v, np.ones(smooth) / smooth, mode="valid")
            xs = xs[smooth - 1 :]
        ax.plot(xs, v, label=name, marker=marker)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if len(history) > 1:
        ax.legend()
    if title:
        ax.set_title(title)
    return ax
