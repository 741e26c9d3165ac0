import random

import numpy as np
import pytest
import torch

from course_utils.devices import environment_report, get_device, seed_everything


def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = get_device()
    if torch.cuda.is_available():
        assert dev.type == "cuda"
    elif torch.backends.mps.is_available():
        assert dev.type == "mps"
    else:
        assert dev.type == "cpu"


def test_get_device_explicit_and_env(monkeypatch):
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_get_device_unknown_name():
    with pytest.raises(ValueError, match="unknown device 'tpu'; expected one of 'cuda', 'mps', 'cpu'"):
        get_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_unavailable_device_is_a_clear_error():
    with pytest.raises(RuntimeError, match="'cuda' was requested but is not available"):
        get_device("cuda")


def test_seed_everything_makes_all_generators_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)

    seed_everything(123)
    a = draw()
    seed_everything(123)
    b = draw()
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    g1, g2 = seed_everything(5), seed_everything(5)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    assert torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("bad", [-1, 1.5, "0", None])
def test_seed_everything_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        seed_everything(bad)


def test_environment_report_names_versions_and_device():
    rep = environment_report("cpu")
    assert torch.__version__ in rep
    assert "torchvision" in rep and "scipy" in rep
    assert rep.splitlines()[-1].startswith("device      cpu")


def test_autocast_is_bf16_on_cuda_only():
    from course_utils.devices import autocast

    a = torch.ones(4, 4)
    with autocast("cpu"):
        assert (a @ a).dtype == torch.float32
    if torch.cuda.is_available():
        b = a.cuda()
        with autocast(b.device):
            assert (b @ b).dtype == torch.bfloat16
