import pytest
import torch
from torch import nn

from course_utils.checkpoint import CheckpointError, load_checkpoint, load_or_train, save_checkpoint


class Net(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, x):
        return self.body(x)


class OtherNet(Net):
    pass


def test_round_trip_restores_weights_and_meta(tmp_path):
    torch.manual_seed(0)
    a, b = Net(), Net()
    path = save_checkpoint(a, tmp_path / "sub" / "net.pt", epoch=3, losses=[1.0, 0.5])
    meta = load_checkpoint(b, path)
    assert meta == {"epoch": 3, "losses": [1.0, 0.5]}
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"]  # no temp file left behind
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net = Net()
    path = save_checkpoint(net, tmp_path / "net.pt", version=1)

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(net, path, version=2)
    monkeypatch.undo()
    assert load_checkpoint(Net(), path) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]


def test_checkpoint_from_another_class(tmp_path):
    path = save_checkpoint(Net(), tmp_path / "net.pt")
    with pytest.raises(CheckpointError, match="holds a Net checkpoint, but the model is a OtherNet"):
        load_checkpoint(OtherNet(), path)


def test_checkpoint_from_another_architecture_lists_differences(tmp_path):
    path = save_checkpoint(Net(hidden=8), tmp_path / "net.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(Net(hidden=16), path)
    msg = str(e.value)
    assert "saved from another Net architecture" in msg
    assert "body.0.weight: model has shape (16, 4), checkpoint has (8, 4)" in msg


def test_unreadable_and_foreign_files(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(Net(), junk)
    raw = tmp_path / "raw.pt"
    torch.save(Net().state_dict(), raw)  # a bare state_dict, not a course checkpoint
    with pytest.raises(CheckpointError, match="not a course_utils checkpoint"):
        load_checkpoint(Net(), raw)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(Net(), tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got dict"):
        save_checkpoint({}, tmp_path / "x.pt")


def test_load_or_train_trains_once_then_loads(tmp_path):
    calls = []
    path = tmp_path / "net.pt"

    def train():
        calls.append(1)
        with torch.no_grad():
            net.body[0].weight.fill_(0.25)
        return {"loss": [0.1]}

    net = Net()
    assert load_or_train(net, path, train) == {"loss": [0.1]}
    fresh = Net()
    assert load_or_train(fresh, path, train) == {"loss": [0.1]}
    assert len(calls) == 1
    assert torch.all(fresh.body[0].weight == 0.25)
