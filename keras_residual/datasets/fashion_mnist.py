"""Fashion-MNIST: pixel-wise sequential, permuted sequential, and images.

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017; 60,000 train / 10,000 test
28x28 grayscale images of 10 kinds of clothing) is kept as the four gzipped
IDX files that `keras.datasets.fashion_mnist` reads. They are looked for,
in this order:

1. Keras' cache, `$KERAS_HOME/datasets/fashion-mnist/` (default
   `~/.keras/datasets/fashion-mnist/`), where `keras.datasets.fashion_mnist`
   leaves them;
2. the folder of Debian's `dataset-fashion-mnist` package,
   `/usr/share/datasets/fashion-mnist/` (`apt-get install
   dataset-fashion-mnist`), or the folder named by the environment variable
   `KERAS_RESIDUAL_FASHION_MNIST_DIR`;
3. a download through `keras.utils.get_file` into Keras' cache, when the
   server answers within a few seconds.

The source used is printed and kept in the result's `.source` (`"keras"` or
`"debian"`). Every file is checked (IDX header, sizes, labels 0-9); there is
no smaller stand-in: data that cannot be found raise
`DatasetUnavailableError` saying how to get them.
"""

import gzip
import os

import keras
import numpy as np

from keras_residual import _validation as check
from keras_residual.datasets import _common

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# The names keras.datasets.fashion_mnist and Debian's package both use.
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
KERAS_SUBDIR = os.path.join("datasets", "fashion-mnist")
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
#: Environment variable naming another folder to read as Debian's package.
DIR_ENV = "KERAS_RESIDUAL_FASHION_MNIST_DIR"
SOURCES = ("auto", "keras", "debian")
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_IDX_UBYTE = 0x08


def debian_dir():
    """The folder read as Debian's package: `$KERAS_RESIDUAL_FASHION_MNIST_DIR`,
    else `/usr/share/datasets/fashion-mnist`."""
    return os.environ.get(DIR_ENV) or DEBIAN_DIR


def _keras_dirs():
    return [os.path.join(root, KERAS_SUBDIR) for root in _common.cache_roots()]


def _complete(folder):
    return all(os.path.isfile(os.path.join(folder, f)) for f in FILES.values())


def _read_idx(path, ndim):
    """A gzipped IDX file of unsigned bytes with `ndim` dimensions."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 + 4 * ndim or data[:2] != b"\0\0":
        raise ValueError(f"{path} is not an IDX file")
    if data[2] != _IDX_UBYTE or data[3] != ndim:
        raise ValueError(
            f"{path}: IDX type 0x{data[2]:02x} with {data[3]} dimensions, "
            f"expected unsigned bytes (0x08) with {ndim}"
        )
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(dims)):
        raise ValueError(
            f"{path}: the header says {dims} but {values.size} values follow "
            "(truncated or damaged file)"
        )
    return values.reshape(dims)


def _read_folder(folder):
    """`(x_train, y_train, x_test, y_test)`, x uint8 of shape (n, 28, 28)."""
    arrays = {}
    for part in ("train", "test"):
        x = _read_idx(os.path.join(folder, FILES[f"{part}_images"]), 3)
        y = _read_idx(os.path.join(folder, FILES[f"{part}_labels"]), 1)
        if x.shape[1:] != (28, 28) or len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"{folder}: {part} images of shape {x.shape} with {len(y)} "
                "labels; expected (n, 28, 28) images with n >= 1 labels"
            )
        if y.max() > 9:
            raise ValueError(f"{folder}: {part} labels above 9 ({y.max()})")
        arrays[part] = (x, y.astype("int64"))
    return (*arrays["train"], *arrays["test"])


def _instructions():
    cache = os.path.join(_common.keras_home(), KERAS_SUBDIR)
    return (
        "To get Fashion-MNIST offline on Debian or Ubuntu: `sudo apt-get "
        f"install dataset-fashion-mnist` (files in {DEBIAN_DIR}); or copy the "
        f"four files {', '.join(FILES.values())} (from {ORIGIN}) into {cache} "
        f"or into a folder named by ${DIR_ENV}; set KERAS_HOME to use another "
        "Keras cache."
    )


def _candidates(source):
    """`[(source, folder)]` to try, in order; folder `None` is a download."""
    found = []
    if source in ("auto", "keras"):
        found += [("keras", d) for d in _keras_dirs() if _complete(d)]
    if source in ("auto", "debian") and _complete(debian_dir()):
        found.append(("debian", debian_dir()))
    return found


def _download(verbose):
    folder = None
    for name in FILES.values():
        _common.say(verbose, f"Fashion-MNIST: downloading {ORIGIN}{name}")
        path = keras.utils.get_file(
            fname=name,
            origin=ORIGIN + name,
            cache_dir=_common.keras_home(),
            cache_subdir=KERAS_SUBDIR,
        )
        folder = os.path.dirname(path)
    return folder


def _load(source, verbose):
    """`(x_train, y_train, x_test, y_test, source)`, x uint8 (n, 28, 28)."""
    problems = []
    for name, folder in _candidates(source):
        try:
            arrays = _read_folder(folder)
        except (OSError, ValueError, EOFError) as error:
            problems.append(str(error))
            _common.say(verbose, f"Fashion-MNIST: skipping {folder}: {error}")
            continue
        where = "Keras' cache" if name == "keras" else "Debian's package folder"
        _common.say(
            verbose,
            f"Fashion-MNIST from {where}, {folder} ({len(arrays[0]):,} train / "
            f"{len(arrays[2]):,} test)",
        )
        return (*arrays, name)
    if source in ("auto", "keras") and _common.reachable(ORIGIN + FILES["train_labels"]):
        try:
            folder = _download(verbose)
            arrays = _read_folder(folder)
        except Exception as error:  # noqa: BLE001 - any download failure
            problems.append(f"download failed: {error}")
        else:
            _common.say(verbose, f"Fashion-MNIST downloaded to {folder}")
            return (*arrays, "keras")
    else:
        problems.append(f"{ORIGIN} could not be reached (waited up to {_common.PROBE_TIMEOUT:g} s)")
    looked = []
    if source in ("auto", "keras"):
        looked += _keras_dirs()
    if source in ("auto", "debian"):
        looked.append(debian_dir())
    raise _common.DatasetUnavailableError(
        f"Fashion-MNIST (source={source!r}) was not found in {', '.join(looked)}; "
        f"{'; '.join(problems)}. {_instructions()}"
    )


def fashion_mnist_source(source="auto"):
    """Which Fashion-MNIST source the loaders would use now, without reading it.

    Args:
        source: `"auto"` (default), `"keras"` or `"debian"`.

    Returns:
        `"keras"` (Keras' cache, or a download when nothing is found
        locally and the server answers) or `"debian"`.

    Raises:
        DatasetUnavailableError: no such source is available.

    Example:

    ```python
    kr.datasets.fashion_mnist_source()  # "debian" after apt-get install dataset-fashion-mnist
    ```
    """
    source = check.one_of("source", source, SOURCES)
    found = _candidates(source)
    if found:
        return found[0][0]
    if source != "debian" and _common.reachable(ORIGIN + FILES["train_labels"]):
        return "keras"
    raise _common.DatasetUnavailableError(
        f"No Fashion-MNIST source is available (source={source!r}). {_instructions()}"
    )


def _flat(source, verbose):
    x_train, y_train, x_test, y_test, used = _load(source, verbose)
    scale = np.float32(1.0 / 255.0)
    return (
        x_train.reshape(len(x_train), -1).astype("float32") * scale,
        y_train,
        x_test.reshape(len(x_test), -1).astype("float32") * scale,
        y_test,
        used,
    )


def sequential_fashion_mnist(
    permuted=False, seed=0, source="auto", verbose=True, standardize=False
):
    """Pixel-wise sequential Fashion-MNIST, optionally permuted and standardised.

    Each 28x28 image is read as a sequence of 784 pixels in row-major order,
    one pixel per step, exactly as `sequential_mnist` reads MNIST; with
    `permuted=True` one fixed permutation,
    `np.random.default_rng(seed).permutation(784)`, reorders the steps of the
    training and the test set alike.

    Args:
        permuted: whether to permute the pixel order.
        seed: non-negative integer fixing the permutation (ignored when
            `permuted=False`), or `None` for a fresh one.
        source: `"auto"` (default: Keras' cache, then Debian's package
            folder, then a download), `"keras"` or `"debian"` (force one).
        verbose: whether to print which source was used.
        standardize: whether to standardise the pixels with the training
            set's mean and standard deviation (over all its pixels), train and
            test alike.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as a `Splits` tuple with
        `.source` (`"keras"` or `"debian"`), `.permutation` and
        `.standardization`. `x` is float32 of shape `(n, 784, 1)` (values in
        [0, 1] unless standardised); `y` is int64 of shape `(n,)`, classes
        0-9 (`CLASS_NAMES`). The full data set has 60,000 / 10,000 images.

    Raises:
        ValueError: an argument is invalid.
        DatasetUnavailableError: the data are in none of the places above and
            cannot be downloaded; the message says how to get them.

    Example:

    ```python
    data = kr.datasets.sequential_fashion_mnist(standardize=True)
    (x_train, y_train), (x_test, y_test) = data
    print(data.source, x_train.shape)  # e.g. "debian (60000, 784, 1)"
    ```
    """
    return _common.sequential(
        _flat, SOURCES, source, permuted, seed, standardize, verbose
    )


def fashion_mnist_images(source="auto", data_format=None, verbose=True):
    """Fashion-MNIST as 28x28 grayscale images, for convolutional networks.

    The same files, sources and order as `sequential_fashion_mnist`.

    Args:
        source: `"auto"` (default), `"keras"` or `"debian"`.
        data_format: `"channels_last"` (`(n, 28, 28, 1)`) or
            `"channels_first"` (`(n, 1, 28, 28)`); `None` uses
            `keras.config.image_data_format()`.
        verbose: whether to print which source was used.

    Returns:
        `((x_train, y_train), (x_test, y_test))` as a `Splits` tuple with
        `.source`; `x` float32 in [0, 1], `y` int64 of shape `(n,)`.

    Raises:
        ValueError: an argument is invalid.
        DatasetUnavailableError: the data cannot be found or downloaded.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = kr.datasets.fashion_mnist_images()
    model = kr.applications.ResNet20(input_shape=x_train.shape[1:], classes=10)
    ```
    """
    return _common.images(_flat, SOURCES, source, data_format, verbose)
