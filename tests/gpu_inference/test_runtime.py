import pytest

from gpu_inference.runtime import (
    THREADS_VARIABLE,
    configure_torch,
    pick_device,
    torch_threads_setting,
)


def test_threads_default_to_one(monkeypatch):
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    assert torch_threads_setting() == 1


def test_threads_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, " 3 ")
    assert torch_threads_setting() == 3


@pytest.mark.parametrize("raw", ["two", "0", "-1", "1.5"])
def test_a_bad_thread_setting_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv(THREADS_VARIABLE, raw)
    with pytest.raises(ValueError, match=THREADS_VARIABLE):
        configure_torch()


def test_configure_torch_sets_the_thread_count(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv(THREADS_VARIABLE, "2")
    try:
        assert configure_torch() == 2
        assert torch.get_num_threads() == 2
        assert configure_torch(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_pick_device_is_cpu_without_cuda():
    import torch

    assert pick_device() == ("cuda" if torch.cuda.is_available() else "cpu")
