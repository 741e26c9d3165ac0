"""Metrics for generative models, each tested against an independent reference.

Lecture 09 (``notebooks/09_evaluating_generative_models.ipynb``) derives every one
of them and checks it numerically; lecture 10 uses them to measure mode collapse,
memorization and bias. Sections of this module:

- distances between distributions: :func:`mse`, :func:`kl_discrete`, :func:`kl_gaussian`,
  :func:`perplexity`;
- sample-quality scores over classifier outputs: :func:`classifier_outputs`,
  :func:`inception_score`, :func:`feature_statistics`, :func:`frechet_distance`, :func:`fid`;
- :func:`kid` (kernel inception distance, an unbiased squared MMD, Binkowski et al. 2018);
- :func:`precision_recall` (k-nearest-neighbour manifolds, Kynkaanniemi et al. 2019) and
  :func:`density_coverage` (the same balls counted differently, Naeem et al. 2020);
- :func:`nearest_neighbour_distances` (memorization) and :func:`class_kl` (mode coverage).

IS and FID here use the course's MNIST classifier (:mod:`course_utils.classifier`),
not Inception-v3: the numbers are comparable with each other, never with the
Inception-based FIDs reported in papers. The ROC AUC used for anomaly and
real-vs-generated detection lives in :func:`course_utils.vae.roc_auc`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.linalg
import torch
from torch import nn

from course_utils.checks import check_positive, check_tensor

__all__ = [
    "class_kl",
    "classifier_outputs",
    "density_coverage",
    "feature_statistics",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "kl_discrete",
    "kl_gaussian",
    "mse",
    "nearest_neighbour_distances",
    "perplexity",
    "precision_recall",
]


# ----------------------------------------------------------------------------- helpers
def _as_2d_float(x, name: str) -> np.ndarray:
    """A (N, D) float64 numpy array from a tensor or array; rejects NaN/inf."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ValueError(f"{name} contains NaN or infinite values ({bad} of them)")
    return x


def _same_width(a: np.ndarray, b: np.ndarray, na: str, nb: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{na} and {nb} must have the same feature width; got {a.shape[1]} and {b.shape[1]}"
        )


def _probabilities(p, name: str, atol: float = 1e-4) -> torch.Tensor:
    """(..., K) float64 probability vectors: finite, >= 0, rows summing to 1."""
    p = torch.as_tensor(p).detach().cpu().double()
    if p.dim() == 0:
        raise ValueError(f"{name} must have a last dimension of K classes, got a scalar")
    if not torch.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries")
    sums = p.sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        raise ValueError(
            f"{name} must sum to 1 over its last dimension; got sums {sums.flatten()[:3].tolist()}"
        )
    return p


# ------------------------------------------------------------------ simple distances
def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per example: x, y (N, ...) -> (N,), averaged over all other dims.

    For a VAE, ``mse(x, reconstruction)`` is the reconstruction error per image.
    """
    check_tensor(x, "x", floating=True)
    check_tensor(y, "y", shape=tuple(x.shape), floating=True)
    if x.dim() == 0 or len(x) == 0:
        raise ValueError(f"x must have shape (N, ...) with N >= 1, got {tuple(x.shape)}")
    return (x - y).pow(2).reshape(len(x), -1).mean(1)


def kl_discrete(p, q, eps: float = 0.0) -> torch.Tensor:
    """KL(p || q) = sum_k p_k log(p_k / q_k) in nats, over the last dimension.

    Args:
        p, q: (..., K) probability vectors (each row sums to 1).
        eps: add ``eps`` to every q_k (and renormalise) so that a class q never
            produces gives a finite, large value instead of ``inf``.

    Returns:
        (...,) float64 tensor; terms with p_k = 0 contribute 0 (0 log 0 = 0).
    """
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    if p.shape[-1] != q.shape[-1]:
        raise ValueError(
            f"p and q must have the same number of classes; got {p.shape[-1]} and {q.shape[-1]}"
        )
    if eps:
        q = (q + eps) / (1 + eps * q.shape[-1])
    terms = torch.where(p > 0, p * (torch.log(p) - torch.log(q)), torch.zeros_like(p))
    return terms.sum(-1)


def kl_gaussian(mu0, cov0, mu1, cov1) -> float:
    """KL(N(mu0, cov0) || N(mu1, cov1)) in nats, full covariances (D,) and (D, D).

    ``0.5 * [tr(S1^-1 S0) + (m1 - m0)^T S1^-1 (m1 - m0) - D + log det S1 - log det S0]``.
    """
    mu0, mu1 = np.atleast_1d(np.asarray(mu0, float)), np.atleast_1d(np.asarray(mu1, float))
    cov0, cov1 = np.atleast_2d(np.asarray(cov0, float)), np.atleast_2d(np.asarray(cov1, float))
    d = len(mu0)
    for name, c in (("cov0", cov0), ("cov1", cov1)):
        if c.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}) to match mu0, got {c.shape}")
    if mu1.shape != (d,):
        raise ValueError(f"mu1 must have shape ({d},), got {mu1.shape}")
    l1 = np.linalg.cholesky(cov1)  # raises LinAlgError if cov1 is not positive definite
    l0 = np.linalg.cholesky(cov0)
    a = scipy.linalg.solve_triangular(l1, l0, lower=True)  # L1^-1 L0: tr(S1^-1 S0) = |a|_F^2
    b = scipy.linalg.solve_triangular(l1, mu1 - mu0, lower=True)
    logdet = 2 * (np.log(np.diag(l1)).sum() - np.log(np.diag(l0)).sum())
    return float(0.5 * ((a**2).sum() + (b**2).sum() - d + logdet))


def perplexity(nll_nats) -> float:
    """exp(mean negative log-likelihood per token); ``nll_nats`` (N,) in nats (lecture 06)."""
    nll = torch.as_tensor(nll_nats).double().reshape(-1)
    if len(nll) == 0 or not torch.isfinite(nll).all():
        raise ValueError("nll_nats must be a non-empty array of finite numbers")
    return float(torch.exp(nll.mean()))


# --------------------------------------------------------- classifier-based scores
@torch.no_grad()
def classifier_outputs(
    model: nn.Module, images: torch.Tensor, batch_size: int = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, F) and class probabilities (N, K) of images (N, 1, 28, 28) in [0, 1].

    ``model`` needs a ``features(x)`` method and a ``head`` layer, like
    :class:`course_utils.classifier.MNISTClassifier`. Both outputs are float64 on the CPU.
    """
    check_tensor(images, "images", shape=(None, 1, 28, 28), floating=True)
    check_positive(batch_size, "batch_size", integer=True)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(images[i : i + batch_size].to(device))
        feats.append(f.double().cpu())
        probs.append(torch.softmax(model.head(f).double(), 1).cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def inception_score(probs, splits: int = 1) -> float:
    """IS = exp( E_x KL(p(y|x) || p(y)) ), with p(y) the mean of p(y|x) over the samples.

    Args:
        probs: (N, K) class probabilities p(y|x) of N samples.
        splits: average the score over this many equal chunks (Salimans et al. used 10).

    Returns:
        A number in [1, K]: 1 when every sample gets the same prediction, K when
        predictions are confident (one-hot) and the classes are used equally.
    """
    p = _probabilities(probs, "probs")
    if p.dim() != 2:
        raise ValueError(f"probs must have shape (N, K), got {tuple(p.shape)}")
    check_positive(splits, "splits", integer=True)
    if splits > len(p):
        raise ValueError(f"splits ({splits}) must be at most the number of samples ({len(p)})")
    scores = []
    for chunk in torch.tensor_split(p, splits):
        marginal = chunk.mean(0, keepdim=True)
        scores.append(math.exp(kl_discrete(chunk, marginal.expand_as(chunk)).mean().item()))
    return float(np.mean(scores))


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), the Gaussian that FID fits.

    Raises:
        ValueError: NaN/inf values, or N <= D (the D x D covariance of N <= D samples has
            rank < D, so it would be singular: use more samples or narrower features).
    """
    x = _as_2d_float(features, "features")
    n, d = x.shape
    if n <= d:
        raise ValueError(
            f"need more samples than the feature width to estimate a {d}x{d} covariance; "
            f"got {n} samples of width {d}"
        )
    return x.mean(0), np.cov(x, rowvar=False)


def _sqrtm(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """scipy.linalg.sqrtm(a) and whether a is (numerically) singular for it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", scipy.linalg.LinAlgWarning)
        root = scipy.linalg.sqrtm(a)
    singular = any(issubclass(w.category, scipy.linalg.LinAlgWarning) for w in caught)
    return root, singular or not np.isfinite(root).all()


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, max_imag: float = 1e-3) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``|mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))``, with
    ``scipy.linalg.sqrtm`` and the usual safeguards (as in Heusel et al.'s code):

    - if the product is singular (sqrtm warns, or returns non-finite values), ``eps`` is
      added to both diagonals and the square root taken again;
    - a negligible imaginary part (round-off; largest |imag| of the diagonal <= ``max_imag``)
      is discarded, a larger one raises ``ValueError``.

    Args:
        mu1, mu2: (D,) means; sigma1, sigma2: (D, D) covariances.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = len(mu1)
    if mu2.shape != (d,):
        raise ValueError(f"mu1 and mu2 must have the same width; got {d} and {mu2.shape[0]}")
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape ({d}, {d}), got {s.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    diff = mu1 - mu2
    covmean, singular = _sqrtm(sigma1 @ sigma2)
    if singular:  # regularise both diagonals and try again
        offset = np.eye(d) * eps
        covmean, _ = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > max_imag:
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has a large imaginary part ({imag:.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid(features1, features2) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D).

    With Inception-v3 pool features this is the FID of Heusel et al. (2017); in this
    course the features come from :func:`classifier_outputs` of the MNIST classifier.
    """
    a, b = _as_2d_float(features1, "features1"), _as_2d_float(features2, "features2")
    _same_width(a, b, "features1", "features2")
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


# ------------------------------------------------------------------------------ KID
def _polynomial_mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased squared MMD of rows of a (m, D) and b (m, D), kernel (a.b / D + 1)^3."""
    d, m = a.shape[1], len(a)
    kaa, kbb, kab = ((u @ v.T / d + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
    # the unbiased estimator leaves out k(x_i, x_i): the diagonals of kaa and kbb
    within = (kaa.sum() - kaa.diagonal().sum() + kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return within - 2 * kab.mean()


def kid(real, fake, subset_size: int = 1000, n_subsets: int = 50,
        seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance (Binkowski et al. 2018) of feature sets (N, D) and (M, D).

    The squared maximum mean discrepancy between the two feature distributions with the
    cubic polynomial kernel k(a, b) = (a.b / D + 1)^3, estimated without bias on
    ``n_subsets`` random pairs of subsets of ``subset_size`` rows each (fewer when a set
    is smaller), drawn with a ``torch.Generator`` seeded by ``seed``. Unlike FID its
    expectation does not depend on the number of samples, and it is 0 in expectation for
    two samples of the same distribution (so a single estimate can be slightly negative).

    Returns:
        (mean, standard deviation) of the subset estimates. The standard deviation is that
        of one subset's estimate; the subsets overlap, so it is not the mean's standard error.
    """
    r, f = _as_2d_float(real, "real"), _as_2d_float(fake, "fake")
    _same_width(r, f, "real", "fake")
    check_positive(subset_size, "subset_size", integer=True)
    check_positive(n_subsets, "n_subsets", integer=True)
    m = min(subset_size, len(r), len(f))
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows in each set; got {len(r)} and {len(f)}")
    r, f = torch.from_numpy(r), torch.from_numpy(f)
    g = torch.Generator().manual_seed(seed)
    values = torch.stack([
        _polynomial_mmd2(r[torch.randperm(len(r), generator=g)[:m]],
                         f[torch.randperm(len(f), generator=g)[:m]])
        for _ in range(n_subsets)
    ])
    std = values.std().item() if n_subsets > 1 else 0.0
    return values.mean().item(), std


# ------------------------------------------------------------- precision and recall
def _pairwise(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Euclidean distances (Na, Nb) between rows of a (Na, D) and b (Nb, D), in chunks."""
    return torch.cat([torch.cdist(a[i : i + chunk], b) for i in range(0, len(a), chunk)])


def _knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row of x (N, D) to its k-th nearest other row: (N,)."""
    if k >= len(x):
        raise ValueError(f"k ({k}) must be smaller than the number of samples ({len(x)})")
    radii = []
    for i in range(0, len(x), 2048):
        d = torch.cdist(x[i : i + 2048], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the 1st is the point itself (0)
    return torch.cat(radii)


def _coverage(x: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    """Share of rows of x inside at least one ball B(ref_j, radii_j)."""
    inside = [(torch.cdist(x[i : i + chunk], ref) <= radii).any(1)
              for i in range(0, len(x), chunk)]
    return torch.cat(inside).double().mean().item()


def precision_recall(real, fake, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of feature sets (N, D), (M, D).

    Each set's manifold is the union of balls around its points with radius the distance
    to the point's k-th nearest neighbour in the same set. Precision: share of ``fake``
    inside the real manifold (are samples realistic?). Recall: share of ``real`` inside
    the fake manifold (is the data's variety covered?).
    """
    r, f = _as_2d_float(real, "real"), _as_2d_float(fake, "fake")
    _same_width(r, f, "real", "fake")
    check_positive(k, "k", integer=True)
    r, f = torch.from_numpy(r).float(), torch.from_numpy(f).float()
    precision = _coverage(f, r, _knn_radii(r, k))
    recall = _coverage(r, f, _knn_radii(f, k))
    return precision, recall


def density_coverage(real, fake, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) of feature sets real (N, D) and fake (M, D).

    The balls are those of :func:`precision_recall`'s real manifold: B(x_i, r_i), with r_i
    the distance of real point x_i to its k-th nearest real neighbour. Then

    - density = (1 / (k M)) sum_j #{i : fake_j in B(x_i, r_i)}: how many real balls hold a
      sample, on average, divided by k. About 1 when fake and real come from the same
      distribution; above 1 for samples crowded where the data are dense. A few real
      outliers with huge balls cannot raise it much, where they can raise precision;
    - coverage = (1 / N) #{i : some fake_j in B(x_i, r_i)}: the share of real balls that
      hold at least one sample. It uses only the real manifold, so fake outliers do not
      inflate it as they inflate recall. For equal-size samples of one distribution it
      approaches 1 - 2^-k (0.969 for k = 5, the paper's choice).
    """
    r, f = _as_2d_float(real, "real"), _as_2d_float(fake, "fake")
    _same_width(r, f, "real", "fake")
    check_positive(k, "k", integer=True)
    r, f = torch.from_numpy(r).float(), torch.from_numpy(f).float()
    radii = _knn_radii(r, k)
    balls_per_fake = torch.zeros(len(f), dtype=torch.float64)
    covered = torch.zeros(len(r), dtype=torch.bool)
    for i in range(0, len(f), 2048):
        inside = torch.cdist(f[i : i + 2048], r) <= radii  # (chunk, N)
        balls_per_fake[i : i + 2048] = inside.sum(1).double()
        covered |= inside.any(0)
    return balls_per_fake.mean().item() / k, covered.double().mean().item()


# ------------------------------------------------------ memorization, mode coverage
def nearest_neighbour_distances(queries, reference) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance of each query (N, D) to its nearest row of ``reference`` (M, D), and its index.

    Images may be passed as (N, 1, 28, 28): they are flattened (pixel distances). For a
    memorization check, compare generated samples' distances to the training set with
    those of held-out test images: copies of training images sit at distance ~0.
    """
    q = torch.as_tensor(queries).detach().float().cpu()
    ref = torch.as_tensor(reference).detach().float().cpu()
    q, ref = q.reshape(len(q), -1), ref.reshape(len(ref), -1)
    _as_2d_float(q[:1], "queries")  # shape check
    _same_width(q.numpy(), ref.numpy(), "queries", "reference")
    if not (torch.isfinite(q).all() and torch.isfinite(ref).all()):
        raise ValueError("queries and reference must not contain NaN or infinite values")
    idx = torch.cat([torch.cdist(q[i : i + 1024], ref).argmin(1) for i in range(0, len(q), 1024)])
    # recompute the winning distances directly: cdist's fast path loses precision near 0
    return (q - ref[idx]).pow(2).sum(1).sqrt(), idx


def class_kl(predictions: torch.Tensor, reference, n_classes: int = 10, eps: float = 0.0) -> float:
    """Mode coverage: KL(class histogram of samples || reference class distribution), nats.

    Args:
        predictions: (N,) int64 predicted classes of the samples (a classifier's argmax).
        reference: (K,) the data's class distribution (e.g. training label frequencies).

    0 when the samples use the classes in the data's proportions; log(1/p_k) when every
    sample is of class k (mode collapse onto one digit).
    """
    from course_utils.classifier import class_histogram

    hist = class_histogram(predictions, n_classes)
    return float(kl_discrete(hist, reference, eps=eps))
