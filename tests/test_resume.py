"""Resumable training: an interrupted run continues from its last resume file, bit for bit."""

import pytest
import torch
from torch import nn

from course_utils import checkpoint, classifier, gan, lm, resume, toy, vae
from course_utils.text import IGNORE_INDEX

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models


@pytest.fixture
def every_sync(monkeypatch):
    """Write a resume file at every logging sync (the default waits 60 s)."""
    monkeypatch.setenv(resume.EVERY_ENV, "0")


def interrupt_after(monkeypatch, module, name, calls):
    """Patch ``module.name`` to raise KeyboardInterrupt on its ``calls + 1``-th call."""
    real, count = getattr(module, name), [0]

    def patched(*args, **kwargs):
        count[0] += 1
        if count[0] > calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, patched)


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def without_timing(hist: dict) -> dict:
    return {k: v for k, v in hist.items() if k not in ("epoch_time", "seconds")}


# ----------------------------------------------------------------------------- the VAE
def vae_run(folder=None, **kw):
    torch.manual_seed(0)
    x = torch.rand(40, 16)
    model = vae.VAE(in_dim=16, hidden=12, latent_dim=3)
    hist = vae.train_vae(model, x, epochs=4, batch_size=8, progress=False, resume=folder, **kw)
    return model, hist


def test_interrupted_vae_resumes_bit_for_bit(tmp_path, monkeypatch, every_sync, capsys):
    ref_model, ref_hist = vae_run()  # uninterrupted, no resume files
    folder = tmp_path / "resume"
    interrupt_after(monkeypatch, vae, "vae_loss", calls=2 * 5 + 3)  # in epoch 3 (5 batches each)
    with pytest.raises(KeyboardInterrupt):
        vae_run(folder)
    assert len(list(folder.glob("train_vae-*.pt"))) == 1
    monkeypatch.undo()
    monkeypatch.setenv(resume.EVERY_ENV, "0")
    model, hist = vae_run(folder)
    out = capsys.readouterr().out
    assert "resuming from epoch 2 of 4" in out and str(folder) in out
    assert same_weights(model, ref_model)
    assert without_timing(hist) == without_timing(ref_hist)
    assert len(hist["epoch_time"]) == 4
    assert not folder.exists()  # removed when the run finished


def test_another_configuration_starts_afresh(tmp_path, monkeypatch, every_sync, capsys):
    folder = tmp_path / "resume"
    interrupt_after(monkeypatch, vae, "vae_loss", calls=7)
    with pytest.raises(KeyboardInterrupt):
        vae_run(folder)
    monkeypatch.undo()
    model, hist = vae_run(folder, lr=2e-3)  # another learning rate: not the saved run
    out = capsys.readouterr().out
    assert "starting afresh: the saved state belongs to another configuration" in out
    assert "resuming" not in out
    ref, ref_hist = vae_run(lr=2e-3)
    assert same_weights(model, ref) and without_timing(hist) == without_timing(ref_hist)


def test_configuration_hash_sees_data_architecture_and_settings():
    torch.manual_seed(0)
    m, x = nn.Linear(3, 2), torch.rand(10, 3)
    h = resume.config_hash("f", {"m": m}, {"x": x, "lr": 1e-3})
    assert h == resume.config_hash("f", {"m": nn.Linear(3, 2)}, {"x": x.clone(), "lr": 1e-3})
    assert h != resume.config_hash("f", {"m": m}, {"x": x[:9], "lr": 1e-3})  # data size
    assert h != resume.config_hash("f", {"m": m}, {"x": x + 1, "lr": 1e-3})  # data values
    assert h != resume.config_hash("f", {"m": nn.Linear(3, 4)}, {"x": x, "lr": 1e-3})
    assert h != resume.config_hash("f", {"m": m}, {"x": x, "lr": 2e-3})
    assert h != resume.config_hash("g", {"m": m}, {"x": x, "lr": 1e-3})


def test_load_or_train_resumes_and_removes_the_folder(tmp_path, monkeypatch, every_sync,
                                                      capsys):
    x = torch.rand(40, 16)
    path = tmp_path / "ckpt" / "vae.pt"

    def call(where=path):
        torch.manual_seed(1)
        return vae.load_or_train_vae(where, x, model=vae.VAE(16, 12, 3), epochs=3, batch_size=8)

    interrupt_after(monkeypatch, vae, "vae_loss", calls=5 + 2)
    with pytest.raises(KeyboardInterrupt):
        call()
    assert not path.exists() and len(list(resume.resume_folder(path).glob("*.pt"))) == 1
    monkeypatch.undo()
    model, hist = call()
    assert "resuming from epoch 1 of 3" in capsys.readouterr().out
    assert path.exists() and not resume.resume_folder(path).exists()
    ref, ref_hist = call(tmp_path / "ref.pt")
    assert same_weights(model, ref) and without_timing(hist) == without_timing(ref_hist)


def test_a_short_run_writes_no_resume_file(tmp_path):
    folder = tmp_path / "resume"
    interrupt_calls = []
    real = resume.atomic_save
    resume.atomic_save = lambda *a: interrupt_calls.append(a)  # must not be called
    try:
        vae_run(folder)
    finally:
        resume.atomic_save = real
    assert interrupt_calls == [] and not folder.exists()


# ----------------------------------------------------------------------------- language models
CORPUS = torch.arange(300) % 7


def lm_run(kind, folder=None):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    if kind == "rows":
        x = torch.randint(0, 7, (20, 6))
        y = torch.randint(0, 7, (20, 6))
        y[:, 4:] = IGNORE_INDEX
        model = lm.TransformerLanguageModel(7, context=8, d_model=8, n_heads=2, n_layers=1,
                                            dropout=0.1, num_conditions=2)
        data = (x, y, torch.randint(0, 2, (20,)))
    else:
        model = lm.GRULanguageModel(7, 4, 8, dropout=0.1)
        data = CORPUS
    hist = lm.train_lm(model, data, steps=20, batch_size=4, seq_len=10, log_every=5,
                       stateful=kind == "stateful", generator=gen, eval_every=7,
                       eval_fn=lambda: lm.evaluate_lm(model, CORPUS[:50]) if kind != "rows"
                       else 1.0, progress=False, resume=folder)
    return model, hist


@pytest.mark.parametrize("kind", ["windows", "stateful", "rows"])
def test_interrupted_language_model_resumes_bit_for_bit(kind, tmp_path, monkeypatch,
                                                        every_sync, capsys):
    ref_model, ref_hist = lm_run(kind)
    folder = tmp_path / "resume"
    interrupt_after(monkeypatch, lm.F, "cross_entropy", calls=13)  # step 14 (evals add none)
    with pytest.raises(KeyboardInterrupt):
        lm_run(kind, folder)
    monkeypatch.undo()
    monkeypatch.setenv(resume.EVERY_ENV, "0")
    model, hist = lm_run(kind, folder)
    assert "resuming from step 10 of 20" in capsys.readouterr().out
    assert same_weights(model, ref_model)
    assert without_timing(hist) == without_timing(ref_hist)


def test_compiled_models_share_resume_state(tmp_path):
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    compiled = torch.compile(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)))
    assert all(k.startswith("_orig_mod.") for k in compiled.state_dict())
    state = resume.state_dict(compiled)
    assert state.keys() == plain.state_dict().keys()
    resume.load_state_dict(compiled, resume.state_dict(plain))
    assert same_weights(resume.unwrap(compiled), plain)
    assert resume.config_hash("f", {"m": plain}, {}) == resume.config_hash("f", {"m": compiled}, {})


def test_checkpoint_dir_variable_moves_relative_paths(tmp_path, monkeypatch):
    assert resume.checkpoint_path("../checkpoints/a.pt") == resume.Path("../checkpoints/a.pt")
    monkeypatch.setenv(resume.CHECKPOINT_ENV, str(tmp_path / "drive"))
    assert resume.checkpoint_path("../checkpoints/07_gru.pt") == tmp_path / "drive" / "07_gru.pt"
    assert resume.checkpoint_path("checkpoints/sub/x.pt") == tmp_path / "drive" / "sub" / "x.pt"
    assert resume.checkpoint_path("x.pt") == tmp_path / "drive" / "x.pt"
    assert resume.checkpoint_path(tmp_path / "abs.pt") == tmp_path / "abs.pt"
    assert resume.resume_folder("../checkpoints/a.pt") == tmp_path / "drive" / "a.pt.resume"
    net = nn.Linear(2, 2)
    checkpoint.load_or_train(net, "../checkpoints/net.pt", lambda: {"n": 1})
    assert (tmp_path / "drive" / "net.pt").is_file()
    assert checkpoint.load_checkpoint(nn.Linear(2, 2), "checkpoints/net.pt") == {"n": 1}


# ----------------------------------------------------------------------------- GANs, classifier
def gan_run(folder=None, callback=None):
    torch.manual_seed(0)
    x = torch.rand(12, 1, 28, 28)
    G, D = gan.MLPGenerator(latent_dim=4, hidden=(8,)), gan.MLPDiscriminator(hidden=(8,))
    hist = gan.train_gan(G, D, x, epochs=4, batch_size=4, log_every=2, fixed_z=torch.randn(2, 4),
                         progress=False, callback=callback, resume=folder)
    return nn.ModuleDict({"G": G, "D": D}), hist


def stop_at(epoch):
    def callback(e):
        if e == epoch:
            raise KeyboardInterrupt
    return callback


def test_interrupted_image_gan_resumes_bit_for_bit(tmp_path, every_sync, capsys):
    ref, ref_hist = gan_run()
    with pytest.raises(KeyboardInterrupt):
        gan_run(tmp_path, callback=stop_at(3))  # epoch 3 ends before its save
    pair, hist = gan_run(tmp_path)
    assert "resuming from epoch 2 of 4" in capsys.readouterr().out
    assert same_weights(pair, ref)
    assert hist.keys() == ref_hist.keys()
    for k in ("D", "G", "D(x)", "D(G(z))"):
        assert hist[k] == ref_hist[k]
    assert [(e, t.tolist()) for e, t in hist["snapshots"]] == [
        (e, t.tolist()) for e, t in ref_hist["snapshots"]]


def toy_run(folder=None, callback=None):
    torch.manual_seed(0)
    G, D = gan.ToyGenerator(hidden=4, depth=1), gan.ToyDiscriminator(hidden=4, depth=1)
    hist = gan.train_toy_gan(toy.ring(), G, D, steps=12, batch_size=8, log_every=3,
                             snapshot_at=(7,), n_snapshot=4, callback=callback, progress=False,
                             resume=folder)
    return nn.ModuleDict({"G": G, "D": D}), hist


def test_interrupted_toy_gan_resumes_bit_for_bit(tmp_path, every_sync, capsys):
    ref, ref_hist = toy_run()
    with pytest.raises(KeyboardInterrupt):
        toy_run(tmp_path, callback=stop_at(7))
    pair, hist = toy_run(tmp_path)
    assert "resuming from step 6 of 12" in capsys.readouterr().out
    assert same_weights(pair, ref)
    assert {k: v for k, v in hist.items() if k != "snapshots"} == {
        k: v for k, v in ref_hist.items() if k != "snapshots"}
    assert torch.equal(hist["snapshots"][7], ref_hist["snapshots"][7])


def test_interrupted_classifier_resumes_bit_for_bit(tmp_path, monkeypatch, every_sync, capsys):
    def run(folder=None):
        torch.manual_seed(0)
        m = classifier.MNISTClassifier(width=2, n_features=4)
        x, y = torch.rand(60, 1, 28, 28), torch.randint(0, 10, (60,))
        return m, classifier.train_classifier(m, x, y, epochs=3, batch_size=1, progress=False,
                                              resume=folder)

    ref, ref_hist = run()
    interrupt_after(monkeypatch, classifier.F, "cross_entropy", calls=60 + 55)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    monkeypatch.undo()
    m, hist = run(tmp_path)
    assert "resuming from epoch 1 of 3" in capsys.readouterr().out
    assert same_weights(m, ref) and hist == ref_hist and len(hist["loss"]) == 3


def test_fingerprint_of_a_large_tensor_stays_in_bounds():
    # A float linspace over 47,040,000 positions (the MNIST training images) rounded its last
    # index past the end; the positions are integers now.
    from course_utils.resume import fingerprint

    big = torch.arange(47_040_000, dtype=torch.int32)
    shape, dtype, values = fingerprint(big)
    assert shape == [47_040_000] and dtype == "torch.int32"
    assert len(values) == 64 and values[0] == 0 and values[-1] == 47_039_999
    assert fingerprint(torch.tensor([5.0])) == [[1], "torch.float32", [5.0]]
