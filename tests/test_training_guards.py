"""Training and evaluation functions refuse broken data, and stop when training diverges."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import checkpoint, classifier, distributed, gan, lm, toy, vae
from course_utils.checks import check_values
from course_utils.engine import DivergenceError
from course_utils.text import IGNORE_INDEX

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models

NAN = float("nan")


def tiny_vae(cls=vae.VAE, **kw):
    torch.manual_seed(0)
    return cls(in_dim=16, hidden=8, latent_dim=2, **kw)


def tiny_gan(n_classes=0):
    torch.manual_seed(0)
    G = gan.MLPGenerator(latent_dim=4, hidden=(8,), n_classes=n_classes)
    return G, gan.MLPDiscriminator(hidden=(8,), n_classes=n_classes)


def images(n=8, fill=None):
    x = torch.rand(n, 1, 28, 28)
    if fill is not None:
        x[0, 0, 0, 0] = fill
    return x


# ----------------------------------------------------------------------------- refusals
def test_vae_refuses_nan_out_of_range_empty_and_bad_labels():
    m = tiny_vae()
    x = torch.rand(10, 16)
    with pytest.raises(ValueError, match=r"x must hold finite values, got 16 NaN or infinite"):
        vae.train_vae(m, torch.cat([x[:9], torch.full((1, 16), NAN)]), progress=False)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\], got values in "
                                         r"\[-0.98.*\(x \+ 1\) / 2"):
        vae.train_vae(m, x * 2 - 1, progress=False)
    with pytest.raises(ValueError, match=r"x is empty \(shape \(0, 16\)\)"):
        vae.train_vae(m, torch.zeros(0, 16), progress=False)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\]"):
        vae.evaluate_vae(m, x * 255)
    with pytest.raises(ValueError, match="finite"):
        vae.negative_elbo(m, torch.full((2, 16), float("inf")))
    c = tiny_vae(vae.CVAE, n_classes=3)
    with pytest.raises(ValueError, match=r"labels y must lie in 0..2 \(the model's n_classes "
                                         r"is 3\), got values in 0..5"):
        vae.train_vae(c, x, torch.tensor([0, 1, 2, 5, 0, 1, 2, 0, 1, 2]), progress=False)
    with pytest.raises(ValueError, match="a CVAE needs labels y"):
        vae.train_vae(c, x, progress=False)


def test_gan_refuses_bytes_nan_empty_small_sets_and_bad_labels():
    G, D = tiny_gan()
    with pytest.raises(ValueError, match=r"images must hold values in \[0, 1\], got values in "
                                         r"\[0.*, 25\d.*divide bytes by 255"):
        gan.train_gan(G, D, images() * 255, batch_size=4, progress=False)
    with pytest.raises(ValueError, match="images must hold finite values"):
        gan.train_gan(G, D, images(fill=NAN), batch_size=4, progress=False)
    with pytest.raises(ValueError, match="images is empty"):
        gan.train_gan(G, D, torch.zeros(0, 1, 28, 28), progress=False)
    with pytest.raises(ValueError, match=r"images has 8 example\(s\), fewer than 128 \(one full "
                                         r"batch"):
        gan.train_gan(G, D, images(), progress=False)
    Gc, Dc = tiny_gan(n_classes=3)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2 .*got values in -1..2"):
        gan.train_gan(Gc, Dc, images(4), torch.tensor([0, 1, 2, -1]), batch_size=2,
                      progress=False)
    with pytest.raises(ValueError, match="G and D must be on one device; G is on cpu, D on meta"):
        gan.train_gan(G, D.to("meta"), images(), batch_size=4, progress=False)


def test_toy_gan_refuses_bad_mixtures_and_unpackable_batches():
    G, D = gan.ToyGenerator(hidden=4, depth=1), gan.ToyDiscriminator(hidden=4, depth=1, pack=4)
    with pytest.raises(ValueError, match="batch_size must be divisible by D.pack = 4"):
        gan.train_toy_gan(toy.ring(), G, D, steps=1, batch_size=10, progress=False)
    bad = toy.Mixture("ring", torch.tensor([[0.0, NAN]]), 0.1)
    with pytest.raises(ValueError, match="dist.means must hold finite values"):
        gan.train_toy_gan(bad, G, D, steps=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="lr must be a positive number, got 0"):
        gan.train_toy_gan(toy.ring(), G, D, steps=1, batch_size=8, lr=0, progress=False)


def test_classifier_refuses_bad_images_and_labels():
    torch.manual_seed(0)
    m = classifier.MNISTClassifier(width=2, n_features=4)
    with pytest.raises(ValueError, match=r"images must hold values in \[0, 1\]"):
        classifier.train_classifier(m, images(4) * 255, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="images must hold finite values"):
        classifier.train_classifier(m, images(4, fill=NAN), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="images is empty"):
        classifier.train_classifier(m, torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must lie in 0..9 .*got values in 0..10"):
        classifier.train_classifier(m, images(4), torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="images must hold finite values"):
        classifier.accuracy(m, images(4, fill=NAN), torch.zeros(4, dtype=torch.long))


def test_language_model_refuses_ids_outside_the_vocabulary():
    torch.manual_seed(0)
    m = lm.GRULanguageModel(5, 4, 8, num_conditions=2)
    corpus = torch.arange(40) % 5
    bad = corpus.clone()
    bad[7] = 5
    with pytest.raises(ValueError, match=r"token ids in data must lie in 0..4 \(the model's "
                                         r"vocab_size is 5\), got values in 0..5"):
        lm.train_lm(lm.GRULanguageModel(5, 4, 8), bad, steps=1, seq_len=4, progress=False)
    with pytest.raises(ValueError, match="token ids in data must lie in 0..4"):
        lm.evaluate_lm(m, bad)
    x, y = torch.randint(0, 5, (6, 4)), torch.randint(0, 5, (6, 4))
    cond = torch.tensor([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"token ids in x must lie in 0..4"):
        lm.train_lm(m, (x - 1, y, cond), steps=1, progress=False)
    y_bad = y.clone()
    y_bad[0, 0] = 9
    with pytest.raises(ValueError, match=r"target ids in y must lie in 0..4 \(or -100, the "
                                         r"padding\)"):
        lm.train_lm(m, (x, y_bad, cond), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"cond must lie in 0..1 .*got values in 0..2"):
        lm.train_lm(m, (x, y, cond * 2), steps=1, progress=False)
    y_pad = y.clone()
    y_pad[2] = IGNORE_INDEX
    with pytest.raises(ValueError, match=r"1 row\(s\) of y have no target"):
        lm.evaluate_lm(m, (x, y_pad, cond))
    with pytest.raises(ValueError, match="the rows are empty"):
        lm.train_lm(m, (x[:0], y[:0], cond[:0]), steps=1, progress=False)


def test_checked_data_are_returned_without_a_copy():
    # the checks read the data once; data already on the model's device are not copied
    x = torch.rand(3, 2)
    assert check_values(x, "x", 0, 1) is x


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device (CUDA)")
def test_cpu_data_train_a_gpu_model():
    torch.manual_seed(0)
    m = vae.VAE(16, 8, 2).cuda()
    assert len(vae.train_vae(m, torch.rand(20, 16), epochs=1, progress=False)["loss"]) == 1
    g = lm.GRULanguageModel(5, 4, 8).cuda()
    lm.train_lm(g, torch.arange(60) % 5, steps=2, seq_len=4, progress=False)
    G, D = tiny_gan()
    gan.train_gan(G.cuda(), D.cuda(), images(8), batch_size=4, epochs=1, progress=False)


# ----------------------------------------------------------------------------- divergence
def test_vae_divergence_stops_with_the_epoch_and_advice():
    m = tiny_vae()
    with pytest.raises(DivergenceError, match=r"loss became NaN or infinite in epoch \d+ of 30; "
                                              r".*lower learning rate .*gradient clipping"):
        vae.train_vae(m, torch.rand(32, 16), epochs=30, batch_size=8, lr=1e12, progress=False)


def test_language_model_divergence_names_the_steps_and_last_loss(monkeypatch):
    torch.manual_seed(0)
    m = lm.GRULanguageModel(5, 4, 8)
    real, calls = F.cross_entropy, [0]

    def blows_up_at_step_7(*args, **kwargs):
        calls[0] += 1
        out = real(*args, **kwargs)
        return out * float("inf") if calls[0] == 7 else out

    monkeypatch.setattr(lm.F, "cross_entropy", blows_up_at_step_7)
    with pytest.raises(DivergenceError, match=r"in steps 6-10 \(of 20\); the last finite loss "
                                              r"was \d\.\d+"):
        lm.train_lm(m, torch.arange(60) % 5, steps=20, seq_len=4, log_every=5, progress=False)


def test_gan_divergence_stops_with_the_steps(monkeypatch):
    G, D = tiny_gan()
    real = gan.gan_step

    def nan_step(*args, **kwargs):
        return real(*args, **kwargs) * NAN

    monkeypatch.setattr(gan, "gan_step", nan_step)
    with pytest.raises(DivergenceError, match=r"in steps 1-2 \(of 4\); no finite loss"):
        gan.train_gan(G, D, images(8), batch_size=4, epochs=2, log_every=2, progress=False)
    Gt, Dt = gan.ToyGenerator(hidden=4, depth=1), gan.ToyDiscriminator(hidden=4, depth=1)
    with pytest.raises(DivergenceError, match=r"in steps 1-5 \(of 10\)"):
        gan.train_toy_gan(toy.ring(), Gt, Dt, steps=10, batch_size=8, log_every=5,
                          progress=False)


def test_classifier_divergence_stops(monkeypatch):
    torch.manual_seed(0)
    m = classifier.MNISTClassifier(width=2, n_features=4)
    real = F.cross_entropy
    monkeypatch.setattr(classifier.F, "cross_entropy", lambda *a, **k: real(*a, **k) * NAN)
    with pytest.raises(DivergenceError, match=r"in steps 1-3"):
        classifier.train_classifier(m, images(6), torch.zeros(6, dtype=torch.long),
                                    batch_size=2, epochs=1, progress=False)


def test_load_or_train_never_saves_weights_that_are_not_finite(tmp_path):
    net = nn.Linear(2, 2)

    def train():
        with torch.no_grad():
            net.weight[0, 0] = NAN
        return {}

    with pytest.raises(DivergenceError, match=r"not saving .*net.pt: Linear.weight holds NaN"):
        checkpoint.load_or_train(net, tmp_path / "net.pt", train)
    assert not (tmp_path / "net.pt").exists()


# ----------------------------------------------------------------------------- issue 12
def test_scale_loss_weighs_padded_shards_by_their_targets(monkeypatch):
    # 3 processes, each with its shard of a padded batch: DDP averages their scaled losses'
    # gradients, which must equal the gradient of the whole batch's mean over its targets
    torch.manual_seed(0)
    logits = torch.randn(7, 5, 4, requires_grad=True)
    y = torch.randint(0, 4, (7, 5))
    y[0, 1:] = IGNORE_INDEX  # rows of very different lengths
    y[4, 3:] = IGNORE_INDEX

    def ce(lg, t):
        return F.cross_entropy(lg.reshape(-1, 4), t.reshape(-1), ignore_index=IGNORE_INDEX)

    whole = ce(logits, y)
    (g_whole,) = torch.autograd.grad(whole, logits)
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    avg, rows = 0, 0
    for lg, t in zip(logits.tensor_split(3), y.tensor_split(3), strict=True):
        avg = avg + distributed.scale_loss(ce(lg, t), distributed.count_targets(t),
                                           distributed.count_targets(y)) / 3
        rows = rows + distributed.scale_loss(ce(lg, t), len(t), len(y)) / 3
    (g_avg,) = torch.autograd.grad(avg, logits)
    torch.testing.assert_close(avg, whole)
    torch.testing.assert_close(g_avg, g_whole)
    assert not torch.allclose(rows, whole)  # weighting by rows was not exact


def test_classifier_predicts_on_out_of_range_images_as_lecture_03_shows():
    torch.manual_seed(0)
    m = classifier.MNISTClassifier(width=2, n_features=4)
    x = images(4)
    assert 0 <= classifier.accuracy(m, x * 2 - 1, torch.zeros(4, dtype=torch.long)) <= 1
    with pytest.raises(ValueError, match="images is empty"):
        classifier.predict(m, torch.zeros(0, 1, 28, 28))
