import pytest
import torch

from course_utils.checks import check_choice, check_positive, check_tensor


def test_check_tensor_accepts_matching_tensor():
    x = torch.zeros(4, 1, 28, 28)
    assert check_tensor(x, "x", shape=(None, 1, 28, 28), floating=True) is x


@pytest.mark.parametrize(
    "x, kwargs, error, words",
    [
        ([1, 2], {}, TypeError, "must be a torch.Tensor, got list"),
        (torch.zeros(28, 28), {"shape": (None, 1, 28, 28)}, ValueError, "(N, 1, 28, 28), got (28, 28)"),
        (torch.zeros(2, 3, 28, 28), {"shape": (None, 1, 28, 28)}, ValueError, "got (2, 3, 28, 28)"),
        (torch.zeros(3, dtype=torch.long), {"floating": True}, TypeError, "floating-point"),
        (torch.zeros(3), {"dtype": torch.int64}, TypeError, "dtype torch.int64, got torch.float32"),
    ],
)
def test_check_tensor_errors_say_expected_and_given(x, kwargs, error, words):
    with pytest.raises(error) as e:
        check_tensor(x, "images", **kwargs)
    assert words in str(e.value)
    assert "images" in str(e.value)


def test_check_choice_and_positive():
    assert check_choice("a", "thing", ["a", "b"]) == "a"
    with pytest.raises(ValueError, match="unknown thing 'c'; expected one of 'a', 'b'"):
        check_choice("c", "thing", ["a", "b"])
    assert check_positive(3, "n", integer=True) == 3
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n must be a positive int"):
            check_positive(bad, "n", integer=True)
    with pytest.raises(ValueError, match="temperature must be a positive number, got 0"):
        check_positive(0, "temperature")
