"""The training engine's switches and data-parallel training under torchrun (2 CPU processes).

The torchrun tests launch ``course_utils.train_ddp`` twice, in one process and
in two (gloo), with the same global batch, and compare:
- the parameters of the two ranks: identical (bit for bit);
- the language model (deterministic: no sampling in the step): losses and
  final parameters equal to the one-process run within 1e-5 (float32 sums
  taken in another order);
- the VAE (each process draws its own reparameterisation noise, so the runs
  differ by sampling noise only): final loss within 2% of the one-process run.
"""

import pytest
import torch
from torch import nn

from course_utils import distributed, engine, train_ddp, vae


def _launch(tmp_path, args):
    """Train in one process and in two; return (one-process result, rank 0's result)."""
    single = train_ddp.launch(tmp_path / "one", args)["ranks"][0]
    two = train_ddp.launch(tmp_path / "two", args, processes=2)
    assert "2 process(es)" in two["printed"] and two["printed"].count("process(es)") == 1
    ranks = two["ranks"]  # rank 0 alone printed
    assert [r["world_size"] for r in ranks] == [2, 2] and single["world_size"] == 1
    for k, v in ranks[0]["params"].items():
        assert torch.equal(v, ranks[1]["params"][k]), f"ranks disagree on {k}"
    return single, ranks[0]


def test_torchrun_language_model_matches_one_process(tmp_path):
    single, ddp = _launch(tmp_path, ["--model", "lm", "--batch-size", "8", "--steps", "6",
                                     "--n-train", "5000", "--hidden", "32", "--seq-len", "16"])
    assert len(single["loss"]) == len(ddp["loss"]) == 6
    for a, b in zip(single["loss"], ddp["loss"], strict=True):
        assert abs(a - b) <= 1e-5 * abs(a), (single["loss"], ddp["loss"])
    diff = max((single["params"][k] - v).abs().max().item() for k, v in ddp["params"].items())
    assert diff < 1e-5, f"parameters differ from the one-process run by {diff}"


def test_torchrun_vae_keeps_ranks_identical_and_loss_close(tmp_path):
    single, ddp = _launch(tmp_path, ["--model", "vae", "--batch-size", "64", "--n-train", "2000",
                                     "--hidden", "64"])
    a, b = single["loss"][-1], ddp["loss"][-1]
    assert abs(a - b) <= 0.02 * a, f"one process {a:.2f}, two processes {b:.2f} nats per image"


def test_launch_reports_a_failed_run(tmp_path):
    with pytest.raises(RuntimeError, match="invalid choice: 'gan'"):
        train_ddp.launch(tmp_path / "bad", ["--model", "gan"])


# --------------------------------------------------------------- without torchrun: no-ops
def test_distributed_helpers_are_no_ops_in_one_process():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    x, y = torch.arange(10), torch.arange(10) * 2
    assert distributed.shard(x, y) == (x, y)
    loss = torch.tensor(3.0)
    assert distributed.scale_loss(loss, 5, 10) is loss
    t = torch.ones(3)
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 1.0, 1.0]
    m = nn.Linear(2, 2)
    assert distributed.wrap(m) is m


def test_shard_and_scale_under_a_pretend_world(monkeypatch):
    monkeypatch.setattr(distributed, "is_distributed", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    monkeypatch.setattr(distributed, "rank", lambda: 2)
    part, absent = distributed.shard(torch.arange(10), None)
    assert part.tolist() == [7, 8, 9] and absent is None  # tensor_split(3) -> 4, 3, 3 rows
    # 3 processes average their gradients: a shard of 3 rows of 10 is weighted 3 * 3 / 10
    assert distributed.scale_loss(torch.tensor(1.0), 3, 10).item() == pytest.approx(0.9)
    with pytest.raises(RuntimeError, match="does not support torchrun"):
        engine.prepare_model(nn.Linear(2, 2), data_parallel=False)


# --------------------------------------------------------------- the engine's switches
def test_engine_on_cpu_changes_nothing():
    torch.manual_seed(0)
    a = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    b = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    b.load_state_dict(a.state_dict())
    assert engine.prepare_model(a) is a and not engine.uses_channels_last(a)
    opt_a = engine.make_optimizer("adam", a.parameters(), lr=1e-2)
    opt_b = torch.optim.Adam(b.parameters(), lr=1e-2)
    x = torch.randn(16, 4)
    for _ in range(5):
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad()
            m(x).pow(2).mean().backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)  # bit-identical to plain Adam on the CPU
    x4 = torch.randn(2, 1, 4, 4)
    assert engine.to_memory_format(x4, False) is x4
    assert engine.to_memory_format(x4, True).is_contiguous(memory_format=torch.channels_last)


def test_engine_errors_and_compile_flag(monkeypatch):
    with pytest.raises(ValueError, match="optimizer"):
        engine.make_optimizer("sgd", nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="no parameters"):
        engine.make_optimizer("adam", [])
    monkeypatch.delenv(engine.COMPILE_ENV, raising=False)
    assert engine.compile_enabled(None) is False and engine.compile_enabled(True) is True
    monkeypatch.setenv(engine.COMPILE_ENV, "1")
    assert engine.compile_enabled(None) is True and engine.compile_enabled(False) is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fused Adam and channels_last: CUDA only")
def test_engine_on_cuda_uses_fused_adam_and_channels_last():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).cuda()
    assert engine.make_optimizer("adam", conv.parameters()).defaults["fused"] is True
    engine.prepare_model(conv)
    assert conv[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_compiled_training_matches_eager(one_thread):
    """``compile=True`` runs the same VAE training as eager mode (float noise only)."""
    x = torch.rand(256, 784)
    losses = []
    for flag in (False, True):
        torch.manual_seed(0)
        model = vae.VAE(hidden=32, latent_dim=4)
        losses.append(vae.train_vae(model, x, epochs=2, batch_size=64, progress=False,
                                    compile=flag)["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)  # fused kernels round differently
