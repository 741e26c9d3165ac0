import pytest
import torch

from course_utils import classifier as C


def test_shapes_and_features():
    m = C.MNISTClassifier()
    x = torch.rand(5, 1, 28, 28)
    assert m(x).shape == (5, 10)
    assert m.features(x).shape == (5, 128)
    assert C.predict(m, x).shape == (5,)


def test_a_few_steps_lower_the_loss_on_a_tiny_problem():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 28, 28)
    x[:16] *= 0.5  # two classes: dark and bright images
    y = (torch.arange(32) < 16).long()
    m = C.MNISTClassifier()
    before = torch.nn.functional.cross_entropy(m(x), y).item()
    C.train_classifier(m, x, y, epochs=5, batch_size=16, progress=False)
    after = torch.nn.functional.cross_entropy(m(x), y).item()
    assert after < before


def test_class_histogram():
    h = C.class_histogram(torch.tensor([0, 0, 3, 9]))
    assert h.shape == (10,)
    assert h.tolist() == pytest.approx([0.5, 0, 0, 0.25, 0, 0, 0, 0, 0, 0.25])


def test_load_or_train_saves_then_loads(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "clf.pt"
    m1, meta1 = C.load_or_train_classifier(path, epochs=1, n_train=256, n_test=500,
                                             progress=False)
    assert path.exists() and 0.0 <= meta1["test_accuracy"] <= 1.0
    m2, meta2 = C.load_or_train_classifier(path, progress=False)
    assert meta2["test_accuracy"] == meta1["test_accuracy"]
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(m1(x), m2(x))


def test_bad_inputs():
    m = C.MNISTClassifier()
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 28, 28\), got \(5, 784\)"):
        m(torch.rand(5, 784))
    with pytest.raises(ValueError, match=r"labels must have shape \(5\), got \(4,\)"):
        C.accuracy(m, torch.rand(5, 1, 28, 28), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(TypeError, match="int64"):
        C.class_histogram(torch.tensor([0.0, 1.0]))
