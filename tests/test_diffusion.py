import math

import pytest
import torch
from scipy import stats
from torch import nn

from course_utils.diffusion import (
    EMA,
    NoiseSchedule,
    ddim_step,
    diffusion_loss,
    flow_matching_loss,
    guided_prediction,
    sample_diffusion,
    sample_flow,
    to_images,
    train_diffusion,
)
from course_utils.unet import MLPDenoiser, UNet

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


# ------------------------------------------------------------------ oracle models
class PointMassEps(nn.Module):
    """The exact noise predictor when the data are one point c: eps = (x_t - sqrt(ab) c) / sqrt(1-ab)."""

    n_classes = 0

    def __init__(self, schedule, c):
        super().__init__()
        self.schedule, self.c = schedule, c
        self.dummy = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, labels=None):
        self.seen.append(t.clone())
        steps = (t * self.schedule.T).round().long()
        ab = self.schedule.alpha_bars[steps].float().reshape(-1, *[1] * (x.dim() - 1))
        return (x - ab.sqrt() * self.c) / (1 - ab).sqrt()


class PointMassVelocity(nn.Module):
    """The exact flow-matching velocity when the data are one point c: (c - x_t) / (1 - t)."""

    n_classes = 0

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, t, labels=None):
        tb = t.reshape(-1, *[1] * (x.dim() - 1))
        return (self.c - x) / (1 - tb).clamp(min=1e-6)


class Constant(nn.Module):
    """A 'conditional' model whose prediction is `cond` with labels and `uncond` with no label."""

    n_classes = 3

    def __init__(self, cond=2.0, uncond=0.5):
        super().__init__()
        self.cond, self.uncond = cond, uncond
        self.dummy = nn.Parameter(torch.zeros(()))
        self.calls = 0

    def forward(self, x, t, labels=None):
        self.calls += 1
        if labels is None:
            return torch.full_like(x, self.uncond)
        null = (labels == self.n_classes).reshape(-1, *[1] * (x.dim() - 1))
        return torch.where(null, torch.full_like(x, self.uncond), torch.full_like(x, self.cond))


# ------------------------------------------------------------------ schedule
def test_schedules_conventions():
    lin = NoiseSchedule.linear()
    assert lin.T == 1000 and lin.alpha_bars[0] == 1 and lin.betas[0] == 0
    assert math.isclose(lin.betas[1].item(), 1e-4) and math.isclose(lin.betas[1000].item(), 0.02)
    assert lin.alpha_bars[-1] < 1e-4
    cos = NoiseSchedule.cosine()
    assert cos.alpha_bars[-1] < 1e-6 and torch.all(cos.alpha_bars.diff() < 0)
    assert torch.all(lin.snr(torch.arange(1, 1001)).diff() < 0)  # SNR falls with t
    assert "T=1000" in repr(lin)


def test_closed_form_matches_iterating_the_chain():
    sched = NoiseSchedule.linear(T=100)
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    x0 = torch.where(torch.rand(n, 1, generator=gen) < 0.3, -1.0, 1.0)  # a two-point "dataset"
    x = x0.clone()
    for t in range(1, 41):
        x = sched.q_step(x, torch.full((n,), t), torch.randn(n, 1, generator=gen))
    closed = sched.q_sample(x0, torch.full((n,), 40), torch.randn(n, 1, generator=gen))
    assert abs(x.mean() - closed.mean()) < 0.03 and abs(x.std() - closed.std()) < 0.03
    assert stats.ks_2samp(x.squeeze().numpy(), closed.squeeze().numpy()).pvalue > 0.01
    # the mean and variance of the closed form itself, given x0 = 1
    ab = sched.alpha_bars[40].item()
    ones = sched.q_sample(torch.ones(n, 1), torch.full((n,), 40), torch.randn(n, 1, generator=gen))
    assert abs(ones.mean().item() - math.sqrt(ab)) < 0.02
    assert abs(ones.var().item() - (1 - ab)) < 0.02


def test_posterior_matches_bayes_rule_on_a_grid():
    sched = NoiseSchedule.linear(T=50)
    x0, xt, t = torch.tensor([[0.7]]), torch.tensor([[-0.2]]), 10
    mean, var = sched.posterior(x0.double(), xt.double(), torch.tensor([t]))
    # Bayes: p(x_{t-1} | x_t, x_0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x_0)
    grid = torch.linspace(-4, 4, 200_001, dtype=torch.float64)
    ab_prev, beta = sched.alpha_bars[t - 1], sched.betas[t]
    log_prior = -((grid - ab_prev.sqrt() * 0.7) ** 2) / (2 * (1 - ab_prev))
    log_lik = -((-0.2 - (1 - beta).sqrt() * grid) ** 2) / (2 * beta)
    w = torch.softmax(log_prior + log_lik, 0)
    m = (w * grid).sum()
    v = (w * (grid - m) ** 2).sum()
    assert abs(mean.item() - m.item()) < 1e-6 and abs(var.item() - v.item()) < 1e-7


def test_timestep_errors():
    sched = NoiseSchedule.linear(T=10)
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"integer steps in 0..10 \(T = 10\), got values in 0..11"):
        sched.q_sample(x, torch.tensor([0, 11]), x)
    with pytest.raises(ValueError, match=r"in 1..10 \(T = 10\), got values in 0..3"):
        sched.posterior(x, x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="in 1..10"):
        sched.q_step(x, torch.tensor([0, 1]), x)
    with pytest.raises(TypeError, match="int64 or torch.int32"):
        sched.q_sample(x, torch.tensor([0.5, 1.0]), x)
    with pytest.raises(ValueError, match="t has 1 entries but x0 has 2 rows"):
        sched.q_sample(x, torch.tensor([1]), x)
    with pytest.raises(ValueError, match=r"need integer steps 0 <= s < t <= T = 10, got t=11"):
        ddim_step(sched, x, x, 11, 5)
    with pytest.raises(ValueError, match=r"got t=3, s=3"):
        ddim_step(sched, x, x, 3, 3)
    with pytest.raises(ValueError, match="every beta_t must lie in"):
        NoiseSchedule(torch.tensor([0.1, 1.5]))
    with pytest.raises(ValueError, match="steps must be at most T = 10"):
        sched.timesteps(11)


# ------------------------------------------------------------------ DDIM / DDPM
def test_ddim_eta1_matches_the_ddpm_step():
    sched = NoiseSchedule.cosine(T=100)
    gen = torch.Generator().manual_seed(0)
    xt, eps = torch.randn(5, 3, generator=gen).double(), torch.randn(5, 3, generator=gen).double()
    for t in (1, 2, 50, 100):
        zero = torch.zeros_like(xt)
        ddim_mean = ddim_step(sched, xt, eps, t, t - 1, eta=1.0, noise=zero)
        # Ho et al. (2020), algorithm 2: mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)
        b, a, ab = sched.betas[t], sched.alphas[t], sched.alpha_bars[t]
        ho_mean = (xt - b / (1 - ab).sqrt() * eps) / a.sqrt()
        torch.testing.assert_close(ddim_mean, ho_mean)
        # ... which is the posterior mean at the predicted x0, and sigma^2 its variance
        x0_hat = (xt - (1 - ab).sqrt() * eps) / ab.sqrt()
        post_mean, post_var = sched.posterior(x0_hat, xt, torch.full((5,), t))
        torch.testing.assert_close(ddim_mean, post_mean)
        one = torch.ones_like(xt)
        sigma = ddim_step(sched, xt, eps, t, t - 1, eta=1.0, noise=one) - ddim_mean
        torch.testing.assert_close(sigma**2, post_var.expand_as(sigma))


def test_sampler_visits_every_step_once_and_never_t0():
    sched = NoiseSchedule.linear(T=20)
    model = PointMassEps(sched, c=0.3)
    x = sample_diffusion(model, sched, n=4, steps=20, eta=1.0, shape=(2,), clip=False,
                         generator=torch.Generator().manual_seed(0))
    seen = [round(s[0].item() * 20) for s in model.seen]
    assert seen == list(range(20, 0, -1))  # T, T-1, ..., 1
    torch.testing.assert_close(x, torch.full((4, 2), 0.3))  # the exact model lands on the data
    model.seen.clear()
    sample_diffusion(model, sched, n=2, steps=4, shape=(2,))
    assert [round(s[0].item() * 20) for s in model.seen] == [20, 15, 10, 5]


def test_ddim_with_the_exact_model_reaches_the_data():
    sched = NoiseSchedule.cosine(T=1000)
    x, path = sample_diffusion(PointMassEps(sched, c=-0.5), sched, n=3, steps=7, eta=0.0,
                               shape=(1, 4, 4), return_path=True)
    torch.testing.assert_close(x, torch.full((3, 1, 4, 4), -0.5), atol=1e-4, rtol=0)
    assert len(path) == 7


def test_eps_loss_of_the_exact_model_is_zero():
    sched = NoiseSchedule.linear(T=50)
    x0 = torch.full((64, 1, 4, 4), 0.25)
    loss = diffusion_loss(PointMassEps(sched, 0.25), x0, sched)
    assert loss.item() < 1e-8


# ------------------------------------------------------------------ flow matching
def test_flow_velocity_sign_loss_and_sampler():
    c = 0.8
    x1 = torch.full((256, 3), c)
    oracle = PointMassVelocity(c)
    assert flow_matching_loss(oracle, x1).item() < 1e-8  # target is data minus noise
    reversed_sign = flow_matching_loss(lambda x, t, y: -oracle(x, t, y), x1).item()
    assert reversed_sign > 1.0  # the other sign is far off
    x = sample_flow(oracle, n=5, steps=4, method="euler", shape=(3,))  # straight paths: exact
    torch.testing.assert_close(x, torch.full((5, 3), c), atol=1e-5, rtol=0)
    flipped = PointMassVelocity(c)
    flipped.forward = lambda x, t, labels=None: -oracle(x, t, labels)
    wrong = sample_flow(flipped, n=5, steps=4, shape=(3,), generator=torch.Generator().manual_seed(0))
    assert (wrong - c).abs().mean() > 1.0  # pushed away from the data


def test_flow_heun_is_second_order_on_a_linear_ode():
    # dx/dt = -x + 1 (not a straight path): error of Euler ~ h, of Heun ~ h^2
    class Linear(nn.Module):
        n_classes = 0

        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(()))

        def forward(self, x, t, labels=None):
            return 1 - x

    gen = torch.Generator().manual_seed(0)
    x_exact = None
    errs = {}
    for method in ("euler", "heun"):
        for steps in (10, 20):
            gen.manual_seed(0)
            x = sample_flow(Linear(), 4, steps=steps, method=method, shape=(1,), generator=gen)
            gen.manual_seed(0)
            x0 = torch.randn(4, 1, generator=gen)
            x_exact = 1 + (x0 - 1) * math.exp(-1)
            errs[method, steps] = (x - x_exact).abs().max().item()
    assert 1.7 < errs["euler", 10] / errs["euler", 20] < 2.3
    assert 3.4 < errs["heun", 10] / errs["heun", 20] < 4.6


# ------------------------------------------------------------------ guidance
def test_guidance_sign_convention():
    m = Constant(cond=2.0, uncond=0.5)
    x, t, y = torch.zeros(4, 1), torch.rand(4), torch.tensor([0, 1, 2, 0])
    for w in (0.0, -1.0, 1.0, 3.0, 0.5):
        out = guided_prediction(m, x, t, y, w)
        torch.testing.assert_close(out, torch.full((4, 1), (1 + w) * 2.0 - w * 0.5))
    m.calls = 0
    guided_prediction(m, x, t, y, 0.0)
    guided_prediction(m, x, t, y, -1.0)
    assert m.calls == 2  # w = 0 and w = -1 need one evaluation each
    out = sample_flow(m, 4, steps=2, labels=y, w=-1, shape=(1,),
                      generator=torch.Generator().manual_seed(0))
    assert out.shape == (4, 1)  # w = -1 is allowed: the unconditional model


def test_guidance_and_sampling_errors():
    m = Constant()
    y = torch.tensor([0, 1])
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="guidance weight w must be a finite number"):
            sample_flow(m, 2, steps=2, labels=y, w=bad, shape=(1,))
    with pytest.raises(ValueError, match="guidance .* needs labels"):
        sample_flow(m, 2, steps=2, w=2.0, shape=(1,))
    with pytest.raises(ValueError, match=r"labels must lie in 0..2, got values in 0..3"):
        sample_flow(m, 2, steps=2, labels=torch.tensor([0, 3]), shape=(1,))
    with pytest.raises(ValueError, match=r"labels must have shape \(3\)"):
        sample_flow(m, 3, steps=2, labels=y, shape=(1,))
    sched = NoiseSchedule.linear(T=10)
    for steps in (0, -1, 2.5):
        with pytest.raises(ValueError, match="sampling steps must be an int >= 1"):
            sample_flow(m, 2, steps=steps, shape=(1,))
        with pytest.raises(ValueError, match="sampling steps must be an int >= 1"):
            sample_diffusion(m, sched, 2, steps=steps, shape=(1,))
    with pytest.raises(ValueError, match="unconditional"):
        sample_flow(PointMassVelocity(0.0), 2, steps=2, labels=y, shape=(1,))
    with pytest.raises(ValueError, match="unknown ODE solver 'rk4'"):
        sample_flow(m, 2, method="rk4", shape=(1,))
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
        sample_diffusion(m, sched, 2, steps=2, eta=2.0, shape=(1,))
    with pytest.raises(ValueError, match="n must be a positive int"):
        sample_flow(m, 0, shape=(1,))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, N, N\), got \(2, 1, 5\)"):
        sample_flow(UNet(channels=(4, 8, 8), emb_dim=16, groups=2), 2, steps=1, shape=(1, 5))


def test_to_images():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0])
    torch.testing.assert_close(to_images(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


# ------------------------------------------------------------------ training
def toy_images(n=64):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=gen).round(), torch.randint(0, 3, (n,), generator=gen)


def test_train_both_objectives_with_labels_and_ema():
    x, y = toy_images()
    for objective in ("eps", "velocity"):
        torch.manual_seed(0)
        m = UNet(channels=(4, 8, 8), emb_dim=16, groups=2, n_classes=3)
        ema = EMA(m, decay=0.9)
        snaps = []
        sched = NoiseSchedule.linear(T=50) if objective == "eps" else None
        hist = train_diffusion(m, x, y, steps=30, objective=objective, schedule=sched,
                               batch_size=16, lr=3e-3, warmup=5, ema=ema, log_every=10,
                               callback=snaps.append, callback_every=15, progress=False)
        assert hist["step"] == [10, 20, 30] and len(hist["loss"]) == 3
        assert hist["loss"][-1] < hist["loss"][0]
        assert snaps == [15, 30] and hist["train_time"] > 0
        assert ema.updates == 30 and not m.training
        diff = sum((a - b).abs().sum() for a, b in
                   zip(ema.model.parameters(), m.parameters(), strict=True))
        assert diff > 0


def test_training_is_reproducible():
    x, _ = toy_images(32)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        m = MLPDenoiser(dim=64, hidden=16, depth=1, emb_dim=8)
        h = train_diffusion(m, x.reshape(32, -1) * 2 - 1, steps=6, objective="velocity",
                            rescale=False, batch_size=8, log_every=3, progress=False, seed=1)
        losses.append(h["loss"])
    assert losses[0] == losses[1]


def test_ema_average():
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = EMA(m, decay=0.5)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)  # warm-up: d = min(0.5, 2/11) = 2/11
    assert math.isclose(ema.model.weight.item(), 9 / 11, rel_tol=1e-6)
    with pytest.raises(ValueError, match="EMA decay"):
        EMA(m, decay=1.0)


def test_training_input_errors():
    x, y = toy_images(32)
    m = UNet(channels=(4, 8, 8), emb_dim=16, groups=2, n_classes=3)
    kw = dict(steps=1, batch_size=8, progress=False)
    with pytest.raises(ValueError, match=r"images must be pixel intensities in \[0, 1\].*got values in \[-1, 1\]"):
        train_diffusion(m, x * 2 - 1, y, **kw)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        train_diffusion(m, bad, y, **kw)
    with pytest.raises(ValueError, match=r"labels must lie in 0..2, got values in 0..5"):
        train_diffusion(m, x, torch.cat([y[:-1], torch.tensor([5])]), **kw)
    with pytest.raises(ValueError, match="conditional on 3 classes: pass labels"):
        train_diffusion(m, x, None, **kw)
    with pytest.raises(ValueError, match="need at least one full batch: 32 examples for batch_size 64"):
        train_diffusion(m, x, y, steps=1, batch_size=64, progress=False)
    with pytest.raises(ValueError, match="the data are on meta but the model is on cpu"):
        train_diffusion(m, x.to("meta"), y, **kw)
    with pytest.raises(ValueError, match="unknown objective 'x0'"):
        train_diffusion(m, x, y, objective="x0", **kw)
    with pytest.raises(ValueError, match="uses no noise schedule"):
        train_diffusion(m, x, y, objective="velocity", schedule=NoiseSchedule.linear(), **kw)
    with pytest.raises(ValueError, match="p_uncond"):
        train_diffusion(m, x, y, p_uncond=1.0, **kw)
    with pytest.raises(ValueError, match=r"shape \(N, \.\.\.\) with N >= 1"):
        train_diffusion(m, x[:0], y[:0], **kw)


def test_nonfinite_loss_stops_training():
    x, _ = toy_images(32)
    m = UNet(channels=(4, 8, 8), emb_dim=16, groups=2)
    with torch.no_grad():
        m.out.bias.fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="became NaN or infinite between steps 1 and 2"):
        train_diffusion(m, x, steps=4, batch_size=8, log_every=2, progress=False)
