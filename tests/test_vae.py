import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import mannwhitneyu
from torch.distributions import Normal, kl_divergence

from course_utils.vae import (
    CVAE,
    VAE,
    evaluate_vae,
    gaussian_kl,
    iwae_log_likelihood,
    load_or_train_vae,
    negative_elbo,
    roc_auc,
    train_vae,
    vae_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


def small_vae(cls=VAE, **kw):
    torch.manual_seed(0)
    return cls(in_dim=16, hidden=12, latent_dim=3, **kw)


def test_shapes_and_parameter_count():
    m = VAE()
    assert sum(p.numel() for p in m.parameters()) == 652_824
    x = torch.rand(5, 1, 28, 28)
    logits, mu, logvar = m(x)
    assert logits.shape == (5, 784) and mu.shape == (5, 20) and logvar.shape == (5, 20)
    assert m.sample(7).shape == (7, 784)
    assert 0 <= float(m.sample(3).min()) and float(m.sample(3).max()) <= 1
    c = CVAE(latent_dim=2)
    y = torch.tensor([0, 9, 3])
    assert c(torch.rand(3, 784), y)[0].shape == (3, 784)
    assert c.sample(3, y).shape == (3, 784)


def test_gaussian_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(6, 4), torch.randn(6, 4)
    ours = gaussian_kl(mu, logvar)
    q = Normal(mu, torch.exp(0.5 * logvar))
    p = Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.testing.assert_close(ours, kl_divergence(q, p).sum(1))
    assert torch.all(gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)) == 0)


def test_loss_equals_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 1.0]])
    x = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    mu = torch.tensor([[1.0], [0.0]])
    logvar = torch.tensor([[0.0], [math.log(2.0)]])
    p = torch.sigmoid(logits)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum() / 2
    kl = (0.5 * 1.0 + 0.5 * (2.0 - math.log(2.0) - 1.0)) / 2
    loss, rec, rate = vae_loss(logits, x, mu, logvar, beta=3.0)
    assert rec.item() == pytest.approx(bce.item(), rel=1e-6)
    assert rate.item() == pytest.approx(kl, rel=1e-6)
    assert loss.item() == pytest.approx(bce.item() + 3.0 * kl, rel=1e-6)
    # the same as the seed's sigmoid + binary_cross_entropy(reduction="sum")
    seed = F.binary_cross_entropy(p, x, reduction="sum") / 2
    assert rec.item() == pytest.approx(seed.item(), rel=1e-5)


def test_training_lowers_the_loss_and_returns_history():
    torch.manual_seed(0)
    x = (torch.rand(256, 16) > 0.5).float() * torch.linspace(0.2, 1, 16)
    m = small_vae()
    before = evaluate_vae(m, x)["loss"]
    hist = train_vae(m, x, epochs=5, batch_size=32, lr=1e-2, progress=False)
    assert set(hist) == {"loss", "rec", "kl", "epoch_time"} and len(hist["loss"]) == 5
    assert hist["loss"][-1] < hist["loss"][0]
    assert evaluate_vae(m, x)["loss"] < before
    c = small_vae(CVAE, n_classes=4)
    y = torch.arange(256) % 4
    hist = train_vae(c, x, y, epochs=3, batch_size=32, lr=1e-2, progress=False)
    assert hist["loss"][-1] < hist["loss"][0]


def test_iwae_bound_above_elbo_and_equal_at_k1():
    m = small_vae()
    x = torch.rand(64, 16)
    torch.manual_seed(1)
    elbo = -negative_elbo(m, x)
    torch.manual_seed(1)
    k1 = iwae_log_likelihood(m, x, k=1)
    # k = 1 is the ELBO with one sample: same mean up to Monte Carlo noise
    assert abs(k1.mean().item() - elbo.mean().item()) < 0.05 * abs(elbo.mean().item())
    torch.manual_seed(2)
    many = torch.stack([-negative_elbo(m, x) for _ in range(20)]).mean()
    k50 = iwae_log_likelihood(m, x, k=50).mean()
    assert k50 >= many
    assert k1.shape == (64,)


def test_roc_auc_against_scipy_and_known_values():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 2, 3], [0, 1, 1]) == 1.0
    assert roc_auc([3, 2, 1], [0, 1, 1]) == 0.0
    assert roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # ties count 1/2
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=300), 1)  # many ties
    y = rng.integers(0, 2, 300)
    u = mannwhitneyu(s[y == 1], s[y == 0]).statistic
    assert roc_auc(torch.tensor(s), torch.tensor(y)) == pytest.approx(u / (y.sum() * (1 - y).sum()))


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: VAE(latent_dim=0), ValueError, "latent_dim must be a positive int, got 0"),
        (lambda: VAE()(torch.rand(2, 28, 28)), ValueError, "(N, 784) or (N, 1, 28, 28), got (2, 28, 28)"),
        (lambda: VAE()(torch.zeros(2, 784, dtype=torch.long)), TypeError, "floating-point"),
        (lambda: VAE().decode(torch.zeros(2, 5)), ValueError, "z must have shape (N, 20), got (2, 5)"),
        (lambda: vae_loss(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 1),
                          torch.zeros(2, 1), beta=0), ValueError, "beta must be a positive number"),
        (lambda: gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4)), ValueError, "logvar must have shape (2, 3)"),
        (lambda: CVAE()(torch.rand(2, 784)), ValueError, "needs labels y"),
        (lambda: CVAE()(torch.rand(2, 784), torch.tensor([1, 10])), ValueError, "0..9, got values in 1..10"),
        (lambda: CVAE()(torch.rand(2, 784), torch.tensor([1.0, 2.0])), TypeError, "dtype torch.int64"),
        (lambda: roc_auc([1, 2], [1, 1]), ValueError, "need both classes"),
        (lambda: roc_auc([1, 2], [0, 2]), ValueError, "labels must be 0/1"),
        (lambda: train_vae(VAE(), torch.rand(4, 784), epochs=0), ValueError, "epochs must be a positive int"),
        (lambda: iwae_log_likelihood(VAE(), torch.rand(4, 784), k=0), ValueError, "k must be a positive int"),
    ],
)
def test_bad_inputs_say_expected_and_given(call, error, words):
    with pytest.raises(error) as e:
        call()
    assert words in str(e.value)


def test_checkpoint_with_another_latent_size_is_a_clear_error(tmp_path):
    from course_utils.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    path = save_checkpoint(VAE(latent_dim=2), tmp_path / "vae2d.pt")
    with pytest.raises(CheckpointError, match=r"model has shape \(20, 400\), checkpoint has \(2, 400\)"):
        load_checkpoint(VAE(latent_dim=20), path)


def test_load_or_train_vae_trains_once_then_loads(tmp_path):
    x = torch.rand(96, 784)
    path = tmp_path / "vae.pt"
    m1, h1 = load_or_train_vae(path, x, seed=1, model=VAE(hidden=16, latent_dim=2),
                                   epochs=2, batch_size=32)
    assert path.exists() and not m1.training and len(h1["loss"]) == 2
    stamp = path.stat().st_mtime_ns
    m2, h2 = load_or_train_vae(path, x, seed=1, model=VAE(hidden=16, latent_dim=2),
                                   epochs=2, batch_size=32)
    assert path.stat().st_mtime_ns == stamp and h2["loss"] == h1["loss"]
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
