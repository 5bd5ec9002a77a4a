import os

import keras
import pytest


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global seed and the float32 policy."""
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def backend():
    return keras.backend.backend()


@pytest.fixture
def one_torch_thread():
    """One intra-op thread under torch while the smoke run trains.

    Smoke-sized models have tiny matrices, so torch's multi-threaded
    kernels only add synchronisation; on a busy CPU they made this test
    several times slower. Results do not depend on it.
    """
    if keras.backend.backend() != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
