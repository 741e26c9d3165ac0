import math

import pytest
import torch

from course_utils import gan, toy


def test_losses_match_their_formulas():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    d = torch.sigmoid(logits)
    assert gan.g_loss(logits, "saturating").item() == pytest.approx(torch.log(1 - d).mean().item(), abs=1e-6)
    assert gan.g_loss(logits).item() == pytest.approx(-torch.log(d).mean().item(), abs=1e-6)
    # at D = 1/2 everywhere, the discriminator loss is 2 log 2 = log 4
    z = torch.zeros(4)
    assert gan.d_loss(z, z).item() == pytest.approx(math.log(4))


def test_optimal_discriminator_minimises_the_d_loss_pointwise():
    # for one x with densities p, q: argmin_D -p log D - q log(1-D) is D* = p/(p+q)
    p, q = 0.3, 0.1
    ds = torch.linspace(0.01, 0.99, 981)
    obj = -p * torch.log(ds) - q * torch.log(1 - ds)
    assert ds[obj.argmin()].item() == pytest.approx(p / (p + q), abs=1e-3)


def test_toy_models_shapes_and_packing():
    G = gan.ToyGenerator(2, latent_dim=3, hidden=16, n_models=4)
    D = gan.ToyDiscriminator(2, hidden=16, n_models=4, pack=2)
    x = G(torch.randn(4, 10, 3))
    assert x.shape == (4, 10, 2)
    assert D(x).shape == (4, 5)
    G1 = gan.ToyGenerator(1, latent_dim=1, hidden=8)
    assert G1(torch.randn(7, 1)).shape == (7, 1)  # a single model also takes (B, latent)


def test_stacked_models_are_independent():
    G = gan.ToyGenerator(2, hidden=8, n_models=2)
    z = torch.randn(2, 5, 2)
    out = G(z)
    out[0].sum().backward()
    assert G.net[0].weight.grad[1].abs().sum() == 0
    assert G.net[0].weight.grad[0].abs().sum() > 0


def test_a_few_steps_move_the_discriminator_the_right_way():
    torch.manual_seed(0)
    dist = toy.ring()
    G = gan.ToyGenerator(2, hidden=32, n_models=2)
    D = gan.ToyDiscriminator(2, hidden=32, n_models=2)
    hist = gan.train_toy_gan(dist, G, D, steps=40, batch_size=64, lr=1e-3, log_every=20,
                             snapshot_at=(40,), n_snapshot=10, progress=False)
    assert len(hist["D"]) == 2 and hist["snapshots"][40].shape == (2, 10, 2)
    assert hist["D(x)"][-1] > hist["D(G(z))"][-1]  # D tells real from fake
    assert hist["D"][-1] < math.log(4)  # better than chance (log 4 at D = 1/2)


def test_gan_step_on_images_updates_both_networks():
    torch.manual_seed(0)
    G, D = gan.make_image_gan("dcgan", n_classes=10, latent_dim=8, width=4)
    opt_g = torch.optim.Adam(G.parameters(), 1e-3)
    opt_d = torch.optim.Adam(D.parameters(), 1e-3)
    g0 = [p.clone() for p in G.parameters()]
    d0 = [p.clone() for p in D.parameters()]
    y = torch.arange(6) % 10
    out = gan.gan_step(G, D, opt_g, opt_d, torch.rand(6, 1, 28, 28) * 2 - 1, torch.randn(6, 8), y)
    assert out.shape == (4,)
    assert any(not torch.equal(a, b) for a, b in zip(g0, G.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d0, D.parameters(), strict=True))


def test_train_gan_and_generate_shapes():
    torch.manual_seed(0)
    G, D = gan.make_image_gan("mlp", latent_dim=8, hidden=(16,))
    x = torch.rand(64, 1, 28, 28)
    hist = gan.train_gan(G, D, x, epochs=1, batch_size=32, fixed_z=torch.randn(3, 8), progress=False)
    assert len(hist["D"]) == 1 and [e for e, _ in hist["snapshots"]] == [0, 1]
    assert hist["snapshots"][1][1].shape == (3, 1, 28, 28)
    imgs = gan.generate(G, 5)
    assert imgs.shape == (5, 1, 28, 28) and imgs.min() >= 0 and imgs.max() <= 1
    assert gan.interpolate(torch.zeros(8), torch.ones(8), steps=5)[2].tolist() == [0.5] * 8


def test_bad_inputs_give_clear_errors():
    G, D = gan.make_image_gan("dcgan", n_classes=10, latent_dim=8, width=4)
    with pytest.raises(ValueError, match=r"z must have shape \(N, 8\), got \(2, 100\)"):
        G(torch.randn(2, 100), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"labels must be in 0..9, got values in 3..10"):
        G(torch.randn(2, 8), torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="conditional on 10 classes: pass labels"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 28, 28\), got \(2, 784\)"):
        D(torch.rand(2, 784), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="unknown GAN model 'vae'"):
        gan.make_image_gan("vae")
    with pytest.raises(ValueError, match="unknown generator loss 'hinge'"):
        gan.g_loss(torch.zeros(3), "hinge")
    with pytest.raises(ValueError, match="not divisible by pack=4"):
        gan.ToyDiscriminator(2, pack=4)(torch.zeros(6, 2))
    G2, D2 = gan.make_image_gan("mlp", n_classes=10, latent_dim=8, hidden=(16,))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9 .*got values in 0..12"):
        gan.train_gan(G2, D2, torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 12]),
                      batch_size=2, progress=False)


def test_load_or_train_gan_trains_once_then_loads(tmp_path, one_thread):
    images = torch.rand(64, 1, 28, 28)
    labels = torch.arange(64) % 10
    path = tmp_path / "cgan.pt"
    kw = dict(n_classes=10, seed=3, model_kwargs={"latent_dim": 16}, n_fixed=12, epochs=1,
              batch_size=32, progress=False)
    G1, h1 = gan.load_or_train_gan("mlp", path, images, labels, **kw)
    assert path.exists() and not G1.training
    assert [e for e, _ in h1["snapshots"]] == [0, 1] and h1["snapshots"][0][1].shape == (12, 1, 28, 28)
    stamp = path.stat().st_mtime_ns
    G2, h2 = gan.load_or_train_gan("mlp", path, images, labels, **kw)
    assert path.stat().st_mtime_ns == stamp  # loaded, not trained again
    for a, b in zip(G1.state_dict().values(), G2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert h2["D"] == h1["D"]
    with pytest.raises(ValueError, match="GAN model"):
        gan.load_or_train_gan("vae", tmp_path / "x.pt", images)


def test_train_gan_refuses_torchrun_before_checking_the_data(monkeypatch):
    # Appendix 11 shows this refusal with a handful of images: it must come first.
    from course_utils import distributed

    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    G, D = gan.make_image_gan("mlp")
    with pytest.raises(RuntimeError, match="does not support torchrun"):
        gan.train_gan(G, D, torch.rand(8, 1, 28, 28), epochs=1, batch_size=128, progress=False)
