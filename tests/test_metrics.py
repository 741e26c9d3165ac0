"""course_utils.metrics against independent references (closed forms, eigendecompositions)."""

import math

import numpy as np
import pytest
import torch

from course_utils import metrics as M


def random_cov(rng, d, scale=1.0):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.1 * np.eye(d))


def sqrt_psd(s):
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_reference(mu1, s1, mu2, s2):
    # tr((s1 s2)^(1/2)) = tr((s1^(1/2) s2 s1^(1/2))^(1/2)): both symmetric, via eigh only
    r = sqrt_psd(s1)
    middle = sqrt_psd(r @ s2 @ r)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(middle))


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(500, 8))
    assert M.fid(x, x) == pytest.approx(0.0, abs=1e-8)
    assert M.fid(torch.from_numpy(x), torch.from_numpy(x)) == pytest.approx(0.0, abs=1e-8)


def test_fid_against_a_shifted_gaussian_matches_the_closed_form():
    rng = np.random.default_rng(1)
    d, n = 5, 200_000
    cov = random_cov(rng, d)
    shift = rng.normal(size=d)
    x = rng.multivariate_normal(np.zeros(d), cov, size=n)
    y = x + shift  # same covariance: FID = |shift|^2 exactly in the limit
    assert M.fid(x, y) == pytest.approx(float(shift @ shift), rel=1e-6, abs=1e-8)
    z = rng.multivariate_normal(shift, cov, size=n)  # independent samples: sampling noise only
    assert M.fid(x, z) == pytest.approx(float(shift @ shift), abs=0.02)


def test_frechet_distance_agrees_with_an_independent_computation():
    rng = np.random.default_rng(2)
    for d in (1, 3, 20):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_cov(rng, d), random_cov(rng, d, scale=2.0)
        assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
            frechet_reference(mu1, s1, mu2, s2), rel=1e-7, abs=1e-9)


def test_frechet_distance_commuting_covariances_closed_form():
    # diagonal covariances: sum (mu1 - mu2)^2 + sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    want = 1 + 4 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert M.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want)


def test_frechet_distance_singular_product_uses_the_offset():
    s = np.diag([1.0, 0.0, 0.0])  # rank 1: the product is singular
    value = M.frechet_distance(np.zeros(3), s, np.zeros(3), s)
    assert value == pytest.approx(0.0, abs=1e-3)


def test_inception_score_bounds_and_extremes():
    k = 10
    onehot = torch.eye(k).repeat(50, 1)  # confident and uniform over classes
    assert M.inception_score(onehot) == pytest.approx(k)
    assert M.inception_score(torch.full((100, k), 1 / k)) == pytest.approx(1.0)
    same = torch.zeros(100, k)
    same[:, 3] = 1  # always the same class: p(y|x) = p(y)
    assert M.inception_score(same) == pytest.approx(1.0)
    rand = torch.softmax(3 * torch.randn(1000, k, generator=torch.Generator().manual_seed(0)), 1)
    for splits in (1, 10):
        assert 1.0 <= M.inception_score(rand, splits=splits) <= k


def test_kl_discrete_nonnegative_and_zero_only_for_equal():
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(200, 6, generator=g), 1)
    q = torch.softmax(torch.randn(200, 6, generator=g), 1)
    kl = M.kl_discrete(p, q)
    assert (kl > 0).all()
    assert M.kl_discrete(p, p).abs().max() < 1e-12
    # reference: scipy's entropy
    from scipy.stats import entropy
    assert kl[0].item() == pytest.approx(entropy(p[0].numpy(), q[0].numpy()))
    assert M.kl_discrete([1.0, 0.0], [0.5, 0.5]).item() == pytest.approx(math.log(2))
    assert math.isinf(M.kl_discrete([0.5, 0.5], [1.0, 0.0]).item())
    assert math.isfinite(M.kl_discrete([0.5, 0.5], [1.0, 0.0], eps=1e-6).item())


def test_kl_gaussian_closed_form_against_monte_carlo_and_1d_formula():
    m0, s0, m1, s1 = 0.3, 0.5, -1.0, 2.0
    want = math.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5
    assert M.kl_gaussian(m0, s0**2, m1, s1**2) == pytest.approx(want)
    rng = np.random.default_rng(3)
    d = 3
    mu0, mu1 = rng.normal(size=d), rng.normal(size=d)
    c0, c1 = random_cov(rng, d), random_cov(rng, d)
    from scipy.stats import multivariate_normal as mvn
    x = rng.multivariate_normal(mu0, c0, size=200_000)
    mc = np.mean(mvn(mu0, c0).logpdf(x) - mvn(mu1, c1).logpdf(x))
    assert M.kl_gaussian(mu0, c0, mu1, c1) == pytest.approx(mc, rel=0.02)
    assert M.kl_gaussian(mu0, c0, mu0, c0) == pytest.approx(0.0, abs=1e-12)


def test_precision_recall_identical_sets_and_disjoint_sets():
    x = np.random.default_rng(4).normal(size=(300, 4))
    assert M.precision_recall(x, x, k=3) == (1.0, 1.0)
    far = x + 100.0
    assert M.precision_recall(x, far, k=3) == (0.0, 0.0)
    # samples from a small part of the data: precise, but poor recall
    part = x[x[:, 0] > 1.0]
    p, r = M.precision_recall(x, part, k=3)
    assert p == 1.0 and r < 0.5


def test_memorization_and_mode_coverage():
    train = torch.rand(50, 1, 28, 28)
    copies = train[[3, 7, 7]]
    d, idx = M.nearest_neighbour_distances(copies, train)
    assert d.abs().max() < 1e-3 and idx.tolist() == [3, 7, 7]
    ref = torch.full((10,), 0.1)
    assert M.class_kl(torch.arange(10).repeat(5), ref) == pytest.approx(0.0, abs=1e-12)
    assert M.class_kl(torch.full((20,), 4), ref) == pytest.approx(math.log(10))


def test_mse_and_perplexity():
    x = torch.zeros(2, 1, 2, 2)
    y = torch.tensor([1.0, 1, 1, 1, 0, 0, 0, 2]).reshape(2, 1, 2, 2)
    assert M.mse(x, y).tolist() == [1.0, 1.0]
    assert M.perplexity([math.log(4)] * 3) == pytest.approx(4.0)


def test_bad_inputs_give_clear_errors():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(100, 8)), rng.normal(size=(100, 6))
    with pytest.raises(ValueError, match="same feature width; got 8 and 6"):
        M.fid(a, b)
    with pytest.raises(ValueError, match="more samples than the feature width"):
        M.fid(a[:5], a[:5])
    nan = a.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.fid(nan, a)
    with pytest.raises(ValueError, match="same feature width"):
        M.precision_recall(a, b)
    with pytest.raises(ValueError, match="NaN"):
        M.precision_recall(a, nan)
    with pytest.raises(ValueError, match="same width"):
        M.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="imaginary"):
        # not covariances: the product has a negative eigenvalue, its root is complex
        M.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="sum to 1"):
        M.inception_score(torch.ones(4, 3))
    with pytest.raises(ValueError, match="NaN"):
        M.kl_discrete([float("nan"), 1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="same width|same feature width"):
        M.nearest_neighbour_distances(torch.rand(3, 5), torch.rand(4, 6))
    with pytest.raises(ValueError, match="shape"):
        M.mse(torch.rand(3, 4), torch.rand(3, 5))


def kid_reference(a, b):
    # the unbiased MMD^2 written as the definition's three sums, with explicit loops
    m, d = len(a), a.shape[1]

    def k(u, v):
        return (u @ v / d + 1.0) ** 3

    aa = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    bb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    ab = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / m**2
    return aa + bb - 2 * ab


def test_kid_matches_the_definition_on_whole_sets():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(25, 4)), rng.normal(0.3, 1.2, size=(25, 4))
    # subsets as large as the sets are permutations of them: the estimate is the full one
    mean, std = M.kid(a, b, subset_size=25, n_subsets=3)
    assert mean == pytest.approx(kid_reference(a, b), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_kid_is_unbiased_where_the_plug_in_estimate_is_not():
    # 400 independent pairs of 10-point samples of the same Gaussian: the mean KID is 0
    # within 4 standard errors, while the biased estimate (diagonals kept) is clearly > 0
    rng = np.random.default_rng(7)
    unbiased, biased = [], []
    for _ in range(400):
        a, b = rng.normal(size=(10, 3)), rng.normal(size=(10, 3))
        unbiased.append(M.kid(a, b, subset_size=10, n_subsets=1)[0])
        kaa, kbb, kab = ((u @ v.T / 3 + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        biased.append(kaa.mean() + kbb.mean() - 2 * kab.mean())
    unbiased, biased = np.array(unbiased), np.array(biased)
    assert abs(unbiased.mean()) < 4 * unbiased.std() / np.sqrt(len(unbiased))
    assert biased.mean() > 10 * biased.std() / np.sqrt(len(biased))


def test_kid_grows_with_the_shift_and_is_seeded():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(600, 8))
    values = [M.kid(real, rng.normal(size=(600, 8)) + s, subset_size=200)[0]
              for s in (0.0, 0.5, 1.0)]
    assert values[0] < values[1] < values[2] and values[1] > 0
    fake = rng.normal(size=(600, 8))
    assert M.kid(real, fake, seed=3) == M.kid(real, fake, seed=3)
    assert M.kid(real, fake, seed=3) != M.kid(real, fake, seed=4)


def test_density_and_coverage_of_same_far_and_collapsed_samples():
    rng = np.random.default_rng(9)
    real, fake = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    density, coverage = M.density_coverage(real, fake, k=5)
    assert density == pytest.approx(1.0, abs=0.1)  # E[density] = 1 for the same distribution
    assert coverage == pytest.approx(1 - 2**-5, abs=0.03)  # -> 1 - 2^-k
    assert M.density_coverage(real, fake + 100.0, k=5) == (0.0, 0.0)
    # one realistic sample repeated: dense, but it covers only the balls around one point
    density, coverage = M.density_coverage(real, np.repeat(real[:1], 500, axis=0), k=5)
    assert density > 0.5 and coverage < 0.05


def test_density_resists_real_outliers_that_inflate_precision():
    # 0.5% of the real points are far outliers whose k-NN balls are huge; samples spread
    # uniformly over that region land in those balls: precision counts each of them once,
    # density counts the few balls that hold it (against about k for a realistic sample)
    rng = np.random.default_rng(10)
    inliers = rng.normal(size=(995, 2))
    outliers = rng.uniform(-30, 30, size=(5, 2))
    real = np.concatenate([inliers, outliers])
    noise = rng.uniform(-30, 30, size=(1000, 2))
    precision, _ = M.precision_recall(real, noise, k=5)
    density, _ = M.density_coverage(real, noise, k=5)
    assert precision > 0.6 and density < 0.4 * precision
    assert M.density_coverage(real, rng.normal(size=(1000, 2)), k=5)[0] > 0.9  # inliers: ~1


def test_kid_and_density_coverage_errors():
    a, b = np.zeros((20, 4)), np.zeros((20, 3))
    with pytest.raises(ValueError, match="same feature width; got 4 and 3"):
        M.kid(a, b)
    with pytest.raises(ValueError, match="same feature width"):
        M.density_coverage(a, b)
    with pytest.raises(ValueError, match="subset_size must be a positive int"):
        M.kid(a, a, subset_size=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        M.kid(a[:1], a)
    with pytest.raises(ValueError, match=r"k \(20\) must be smaller"):
        M.density_coverage(a, a, k=20)
    nan = np.full((20, 4), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        M.kid(a, nan)
