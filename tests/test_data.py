import shutil

import pytest
import torch

import course_utils as cu
from course_utils.data import DATA_FILES, DataFileError, batches, data_path


def test_mnist_shapes_dtypes_and_ranges():
    x, y = cu.load_mnist("test")
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10_000,) and y.dtype == torch.int64
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # the published MNIST test-set class counts
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_train_limit_and_flatten():
    x, y = cu.load_mnist("train", limit=100, flatten=True)
    assert x.shape == (100, 784) and y.shape == (100,)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the original file order
    x_full, _ = cu.load_mnist("train")
    assert len(x_full) == 60_000


def test_mnist_bad_arguments():
    with pytest.raises(ValueError, match="unknown MNIST split 'validation'"):
        cu.load_mnist("validation")
    with pytest.raises(ValueError, match="limit must be a positive int, got 0"):
        cu.load_mnist("test", limit=0)


def test_names_and_lists():
    names, lists = cu.load_names(with_list=True)
    assert len(names) == len(set(names)) == 5163
    assert names[0] == "mary" and lists[0] == "female"
    assert lists.count("female") == 4275 and lists.count("male") == 888
    assert all(n.isalpha() and n.islower() for n in names)
    assert cu.load_names() == names


def test_shakespeare_text():
    text = cu.load_shakespeare()
    assert len(text) == 1_271_816
    assert len(set(text)) == 80
    assert text.startswith("HAMLET")


def test_load_dataset_by_name_and_unknown_name():
    assert len(cu.load_dataset("names")) == 5163
    x, _ = cu.load_dataset("mnist", split="test", limit=5)
    assert x.shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; expected one of 'mnist', 'names', 'shakespeare'"):
        cu.load_dataset("cifar10")
    assert cu.dataset_names() == ("mnist", "names", "shakespeare")


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    for spec in DATA_FILES.values():
        shutil.copy(data_path(spec.filename.split(".")[0]), tmp_path / spec.filename)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_missing_file_is_a_clear_error(data_copy):
    (data_copy / "names.txt").unlink()
    with pytest.raises(DataFileError, match="data file for 'names' not found at .*names.txt"):
        cu.load_names()


def test_corrupted_file_is_detected_by_sha256(data_copy):
    path = data_copy / "shakespeare.txt"
    raw = bytearray(path.read_bytes())
    raw[1000] ^= 1  # flip one bit
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="corrupted or not the expected file: sha256 expected 9fbf17"):
        cu.load_shakespeare()
    truncated = data_copy / "mnist.npz"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(DataFileError, match="mnist.npz is corrupted"):
        cu.load_mnist("test")


def test_batches_cover_every_row_once_and_keep_pairs():
    x = torch.arange(10).float().unsqueeze(1) * 10
    y = torch.arange(10)
    seen = []
    for xb, yb in batches(x, y, batch_size=4, generator=torch.Generator().manual_seed(0)):
        assert xb.shape[1:] == (1,) and len(xb) == len(yb) <= 4
        assert torch.equal(xb[:, 0], yb.float() * 10)  # rows stay paired
        seen += yb.tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))
    sizes = [len(b[0]) for b in batches(x, y, batch_size=4, drop_last=True)]
    assert sizes == [4, 4]
    ordered = [b[0].tolist() for b in batches(y, batch_size=3, shuffle=False)]
    assert ordered == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_batches_are_reproducible_with_a_generator():
    y = torch.arange(50)
    a = [b[0] for b in batches(y, batch_size=7, generator=torch.Generator().manual_seed(1))]
    b = [b[0] for b in batches(y, batch_size=7, generator=torch.Generator().manual_seed(1))]
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_batches_bad_input():
    with pytest.raises(ValueError, match="same first dimension; tensors\\[0\\] has 3, tensors\\[1\\] has 4"):
        next(batches(torch.zeros(3), torch.zeros(4), batch_size=2))
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        next(batches(torch.zeros(3), batch_size=0))
    with pytest.raises(TypeError, match="must be a torch.Tensor, got list"):
        next(batches([1, 2, 3], batch_size=2))
    with pytest.raises(ValueError, match="at least one tensor"):
        next(batches(batch_size=2))
    with pytest.raises(ValueError, match="scalar"):
        next(batches(torch.tensor(1.0), batch_size=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_batches_stay_on_the_gpu():
    x = torch.arange(100, device="cuda")
    for (xb,) in batches(x, batch_size=32):
        assert xb.is_cuda
    with pytest.raises(ValueError, match="one device"):
        next(batches(x, torch.arange(100), batch_size=2))
