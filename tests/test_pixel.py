import math

import pytest
import torch
import torch.nn.functional as F

from course_utils.engine import DivergenceError
from course_utils.finetune import count_parameters
from course_utils.pixel import MaskedConv2d, PixelCNN, binarise, nll, sample, train_pixel_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return PixelCNN(**{"channels": 8, "n_layers": 2, **kw}).eval()


def _binary(n, seed=0):
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


def _logits(m, x):
    with torch.no_grad():
        return m(x).flatten(1)  # (N, 784) in raster order


def test_masks():
    a = MaskedConv2d(1, 2, 3, "A").mask[0, 0]
    b = MaskedConv2d(1, 2, 3, "B").mask[1, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert MaskedConv2d(1, 1, 7, "A").mask.sum() == 24
    with pytest.raises(ValueError, match="kernel_size must be odd .*got 4"):
        MaskedConv2d(1, 1, 4)
    with pytest.raises(ValueError, match="unknown mask_type 'C'; expected one of 'A', 'B'"):
        MaskedConv2d(1, 1, 3, "C")


def test_mask_a_excludes_the_centre_and_mask_b_includes_it():
    x = torch.zeros(1, 1, 5, 5)
    x2 = x.clone()
    x2[0, 0, 2, 2] = 1.0
    for kind, changes in (("A", False), ("B", True)):
        conv = MaskedConv2d(1, 1, 3, kind, bias=False)
        torch.nn.init.ones_(conv.weight)
        with torch.no_grad():
            d = conv(x2) - conv(x)
        assert bool(d[0, 0, 2, 2] != 0) == changes
        assert (d[0, 0, :2] == 0).all() and (d[0, 0, 2, :2] == 0).all()  # earlier pixels


@pytest.mark.parametrize("j", [0, 13, 27, 28, 5 * 28 + 13, 14 * 28 + 27, 27 * 28, 783])
def test_pixelcnn_is_causal(j):
    # changing pixel j (raster order) never changes the logits of pixels 0..j
    m = _model()
    x = _binary(2)
    x2 = x.clone().flatten(1)
    x2[:, j] = 1 - x2[:, j]
    a, b = _logits(m, x), _logits(m, x2.view(2, 1, 28, 28))
    assert torch.allclose(a[:, : j + 1], b[:, : j + 1], atol=1e-6, rtol=0)
    if j < 783:
        assert not torch.allclose(a[:, j + 1 :], b[:, j + 1 :], atol=1e-4)


def test_gradient_of_a_logit_reaches_only_earlier_pixels():
    m = _model()
    x = _binary(1).requires_grad_(True)
    for i in (0, 29, 400, 783):
        (g,) = torch.autograd.grad(m(x).flatten()[i], x)
        g = g.flatten()
        assert (g[i:] == 0).all()
        assert (i == 0) or g[:i].abs().sum() > 0


def test_the_blind_spot_is_there():
    # logit (r, c) never sees (r - 1, c + 4) however deep the stack, though it sees
    # (r - 1, c + 3) and, two rows up, (r - 2, c + 4)
    m = _model(n_layers=6)
    x = _binary(4).requires_grad_(True)
    r, c = 10, 8
    (g,) = torch.autograd.grad(m(x)[:, 0, r, c].sum(), x)
    g = g.abs().sum(0)[0]  # (28, 28)
    assert (g[r - 1, c + 4 :] == 0).all() and (g[r - 2, c + 5 :] == 0).all()
    assert g[r - 1, c + 3] > 0 and g[r - 2, c + 4] > 0 and g[r, c - 1] > 0


def test_sampling_crop_gives_the_full_logits():
    m = _model()
    x = _binary(2)
    full = _logits(m, x).view(2, 28, 28)
    assert m.reach == 3 + 2
    for r in (0, 3, 5, 6, 20, 27):
        lo = max(0, r - m.reach)
        with torch.no_grad():
            crop = m(x[:, :, lo : r + 1])[:, 0, r - lo]
        assert torch.allclose(crop, full[:, r], atol=1e-5)


def test_default_size():
    m = PixelCNN()
    assert count_parameters(m) == 120_481 and m.reach == 8
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_nll_is_the_summed_bernoulli_nll():
    m = _model()
    zeros = torch.zeros(3, 1, 28, 28)
    want = F.softplus(_logits(m, zeros)).sum(1)  # -log p(x = 0) = sum of softplus(logit)
    assert torch.allclose(nll(m, zeros), want, rtol=1e-5)
    x = _binary(5)
    lg = _logits(m, x)
    by_hand = (F.softplus(lg) - x.flatten(1) * lg).sum(1)
    got = nll(m, x.view(5, 784), batch_size=2)  # (N, 784) is accepted; several batches
    assert got.shape == (5,) and torch.allclose(got, by_hand, rtol=1e-5)
    with torch.no_grad():  # an untrained model with a zeroed last layer: p = 1/2 everywhere
        m.head.weight.zero_()
        m.head.bias.zero_()
    assert torch.allclose(nll(m, x), torch.full((5,), 784 * math.log(2)), rtol=1e-6)
    m.train()
    nll(m, x)
    assert m.training  # the mode is restored


def test_sample_is_binary_and_seeded():
    m = _model(n_layers=1)
    a = sample(m, 3, seed=0)
    assert a.shape == (3, 1, 28, 28) and a.dtype == torch.float32
    assert ((a == 0) | (a == 1)).all() and 0 < a.mean() < 1
    assert torch.equal(sample(m, 3, generator=torch.Generator().manual_seed(0)), a)
    b = sample(m, 3, seed=0, batch_size=2)  # two batches: binary too, but other draws
    assert b.shape == a.shape and ((b == 0) | (b == 1)).all()
    with torch.no_grad():  # logit +30 everywhere: every pixel is 1
        m.head.weight.zero_()
        m.head.bias.fill_(30.0)
    assert (sample(m, 1, seed=1) == 1).all()
    with pytest.raises(ValueError, match="a generator or a seed, not both"):
        sample(m, 1, generator=torch.Generator(), seed=0)
    with pytest.raises(ValueError, match="n must be a positive int, got 0"):
        sample(m, 0)


def _stripes(n=32):
    x = torch.zeros(n, 1, 28, 28)
    x[: n // 2, :, ::2] = 1  # horizontal stripes
    x[n // 2 :, :, :, ::2] = 1  # vertical stripes
    return x


def test_train_lowers_the_loss(tmp_path):
    m = _model()
    x = _stripes()
    before = nll(m, x).mean()
    hist = train_pixel_model(m, x, epochs=3, batch_size=8, lr=1e-2, progress=False,
                             resume=tmp_path / "resume")
    assert set(hist) == {"loss", "epoch_time"} and len(hist["loss"]) == 3
    assert hist["loss"][-1] < hist["loss"][0] and nll(m, x).mean() < 0.8 * before
    assert not m.training and not (tmp_path / "resume").exists()
    # dynamic binarisation takes grey images and draws a fresh binary batch each time
    hist = train_pixel_model(_model(), x * 0.8 + 0.1, epochs=1, batch_size=16, dynamic=True,
                             progress=False)
    assert math.isfinite(hist["loss"][0])


def test_bad_inputs():
    m = _model()
    grey = torch.full((2, 1, 28, 28), 0.3)
    grey[0, 0, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"x must be binary .*got 1567 value\(s\) of 1568 "
                       r"that are neither; binarise the images first: binarise\(x\)"):
        train_pixel_model(m, grey, progress=False)
    with pytest.raises(ValueError, match="x must be binary"):
        nll(m, grey)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 28, 28\) or \(N, 784\), "
                       r"got \(2, 28, 28\)"):
        nll(m, torch.zeros(2, 28, 28))
    bad = torch.zeros(2, 784)
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"finite values, got 1 NaN or infinite"):
        train_pixel_model(m, bad, progress=False)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        train_pixel_model(m, grey * 2, dynamic=True, progress=False)
    with pytest.raises(ValueError, match="epochs must be a positive int, got 0"):
        train_pixel_model(m, _stripes(4), epochs=0)
    assert nll(m, torch.zeros(2, 784, dtype=torch.uint8)).shape == (2,)  # ints are fine
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        m(torch.zeros(1, 1, 28, 28, dtype=torch.long))


def test_divergence_stops_training():
    m = _model()
    with torch.no_grad():
        m.head.bias.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="loss became NaN or infinite in epoch 1 of 2"):
        train_pixel_model(m, _stripes(8), epochs=2, batch_size=8, progress=False)


def test_binarise_modes():
    # (not seed 0: Bernoulli(x) compares x with uniforms, which would then be x itself)
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(7))
    fixed = binarise(x)
    assert torch.equal(fixed, (x > 0.5).float()) and torch.equal(binarise(x), fixed)
    once = binarise(x, "stochastic_once")
    assert torch.equal(binarise(x, "stochastic_once"), once)  # drawn once: same every call
    assert not torch.equal(binarise(x, "stochastic_once", seed=1), once)
    g = torch.Generator().manual_seed(0)
    d1, d2 = binarise(x, "dynamic", generator=g), binarise(x, "dynamic", generator=g)
    assert not torch.equal(d1, d2)  # a fresh draw per call
    for b in (once, d1, d2):
        assert ((b == 0) | (b == 1)).all() and b.shape == x.shape
        assert abs(float(b.mean() - x.mean())) < 0.03  # P(1) = x
    edge = torch.tensor([0.0, 0.5, 0.51, 1.0])
    assert binarise(edge).tolist() == [0, 0, 1, 1]
    assert binarise(edge, "dynamic")[[0, 3]].tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\], got values in "
                       r"\[0.*, 254.*\]; binarise takes grey levels"):
        binarise(x * 255)
    with pytest.raises(ValueError, match="unknown binarisation mode 'random'; expected one of "
                       "'fixed', 'stochastic_once', 'dynamic'"):
        binarise(x, "random")
    with pytest.raises(TypeError, match="floating-point"):
        binarise(torch.zeros(3, dtype=torch.long))
