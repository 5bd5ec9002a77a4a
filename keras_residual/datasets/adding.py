"""The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015)."""

import numpy as np

from keras_residual import _validation as check


def adding_problem(n, length, seed=0):
    """The two-marker adding problem, a long-memory regression task.

    Each sequence has two channels. Channel 0 holds values drawn uniformly
    from [0, 1); channel 1 is a marker that is 0 everywhere except at exactly
    two steps: one drawn uniformly from the first half of the sequence,
    steps `[0, length // 2)`, and one from the second half,
    `[length // 2, length)`. The target is the sum of the two marked values.
    Predicting the constant 1 gives a mean squared error of about 1/6
    (0.167), the baseline a model must beat.

    Args:
        n: number of sequences, an integer >= 1.
        length: steps per sequence, an integer >= 2.
        seed: non-negative integer; the same `(n, length, seed)` gives the
            same data. `None` draws fresh data on each call. Use different
            seeds for the training and the test set.

    Returns:
        `(x, y)`: `x` float32 of shape `(n, length, 2)`, `y` float32 of
        shape `(n, 1)` with values in [0, 2).

    Raises:
        ValueError: `n`, `length` or `seed` is invalid.

    Example:

    ```python
    x_train, y_train = kr.datasets.adding_problem(10_000, 200, seed=0)
    x_test, y_test = kr.datasets.adding_problem(1_000, 200, seed=1)
    model.compile(loss="mse")
    model.fit(x_train, y_train, validation_data=(x_test, y_test))
    ```
    """
    n = check.positive_int("n", n)
    length = check.integer("length", length, minimum=2)
    seed = check.seed("seed", seed)
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, size=(n, length)).astype("float32")
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    rows = np.arange(n)
    markers = np.zeros((n, length), dtype="float32")
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = (values[rows, first] + values[rows, second])[:, None]
    return x, y.astype("float32")
