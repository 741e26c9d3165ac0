import pytest

from course_utils.profiles import default_profile, resolve_profile


def test_notebook_value_used_without_env(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert resolve_profile("full") == "full"
    assert resolve_profile("smoke") == "smoke"


def test_environment_variable_wins(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert resolve_profile("full") == "smoke"
    assert default_profile() == "smoke"
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert default_profile() == "full"


def test_bad_profiles_are_clear_errors(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    with pytest.raises(ValueError, match="unknown profile 'fast'; expected one of 'smoke', 'full'"):
        resolve_profile("fast")
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    with pytest.raises(ValueError, match=r"profile in \$COURSE_PROFILE 'tiny'"):
        resolve_profile("full")


def test_default_profile_follows_hardware(monkeypatch):
    import torch

    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    assert default_profile() == ("full" if torch.cuda.is_available() else "smoke")
