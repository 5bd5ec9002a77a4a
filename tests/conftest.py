import json
import os

import keras
import pytest

BACKENDS = ("tensorflow", "jax", "torch")
# The reason of every by-design skip starts with this; `tests/run_backends.py`
# counts these apart and fails a backend on any other skip (a missing package).
BY_DESIGN = "by design: "
# Where `tests/run_backends.py` wants the session's skips (JSON), if anywhere.
SKIP_REPORT = "KERAS_RESIDUAL_SKIP_REPORT"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "only_backend(*backends, reason): the test runs under these backends only, by "
        "design (e.g. it spans the backends itself, or what it checks exists on one); "
        "elsewhere it is skipped with a reason starting 'by design: '",
    )
    config.addinivalue_line(
        "markers",
        "nchw_conv: the test runs a channels_first convolution, which TensorFlow's CPU "
        "kernels lack without oneDNN: skipped by design where TensorFlow runs without it",
    )


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


def _no_nchw_conv(backend):
    """TensorFlow on a CPU without oneDNN (off under TF_ENABLE_ONEDNN_OPTS=0,
    and by default on CPUs without AVX-512, e.g. some AMD EPYC): no NCHW
    convolution kernel. Probed with one tiny convolution, since whether oneDNN
    is on depends on the CPU. (A cross-backend test runs in the tensorflow
    pass, and its tensorflow subprocess runs on the same CPU.)"""
    if backend != "tensorflow":
        return False
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    try:
        with tf.device("/CPU:0"):
            tf.nn.conv2d(tf.zeros((1, 1, 2, 2)), tf.zeros((1, 1, 1, 1)), 1, "VALID",
                         data_format="NCHW")
    except tf.errors.UnimplementedError:
        return True
    return False


def pytest_collection_modifyitems(config, items):
    backend = keras.backend.backend()
    for item in items:
        if item.get_closest_marker("nchw_conv") is not None and _no_nchw_conv(backend):
            item.add_marker(pytest.mark.skip(reason=(
                f"{BY_DESIGN}TensorFlow's CPU Conv2D has no channels_first (NCHW) kernel "
                "without oneDNN (TF_ENABLE_ONEDNN_OPTS=0, or a CPU without AVX-512); "
                "keras.layers.Conv2D fails the same way"
            )))
        marker = item.get_closest_marker("only_backend")
        if marker is None:
            continue
        backends = marker.args
        reason = marker.kwargs.get("reason")
        unknown = [b for b in backends if b not in BACKENDS]
        if not backends or unknown or not reason or set(marker.kwargs) != {"reason"}:
            raise pytest.UsageError(
                f"{item.nodeid}: only_backend takes backend names out of {BACKENDS} and "
                f"reason=...; received args={backends}, kwargs={marker.kwargs}"
            )
        if backend not in backends:
            item.add_marker(
                pytest.mark.skip(reason=f"{BY_DESIGN}{reason} [{', '.join(backends)} only]")
            )


def _skip_reason(report):
    if hasattr(report, "wasxfail"):
        return f"xfail: {report.wasxfail}"
    if isinstance(report.longrepr, tuple):  # (path, line, reason)
        reason = report.longrepr[2]
    else:
        reason = str(report.longrepr)
    return reason.removeprefix("Skipped: ")


_SKIPS = []  # this session's skips: {"nodeid", "reason"}


def pytest_runtest_logreport(report):
    if report.skipped and report.when in ("setup", "call"):
        _SKIPS.append({"nodeid": report.nodeid, "reason": _skip_reason(report)})


def pytest_collectreport(report):
    # A whole module skipped at import (e.g. by a module-level importorskip).
    if report.skipped:
        _SKIPS.append({"nodeid": report.nodeid, "reason": _skip_reason(report)})


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get(SKIP_REPORT)
    if path:
        with open(path, "w") as f:
            json.dump(
                {
                    "backend": keras.backend.backend(),
                    "by_design": [s for s in _SKIPS if s["reason"].startswith(BY_DESIGN)],
                    "other": [s for s in _SKIPS if not s["reason"].startswith(BY_DESIGN)],
                },
                f,
                indent=1,
            )


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
