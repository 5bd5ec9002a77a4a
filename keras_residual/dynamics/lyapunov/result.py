"""What the engine returns: the spectrum, its derived figures, its history and its spread."""

import dataclasses

import numpy as np

from keras_residual import _validation as check


def kaplan_yorke_dimension(exponents):
    """Kaplan–Yorke (Lyapunov) dimension of a spectrum.

    With the exponents sorted descending and `j` the largest index such that
    `lambda_1 + ... + lambda_j >= 0`:

        D_KY = j + (lambda_1 + ... + lambda_j) / |lambda_{j+1}|

    It is 0 when `lambda_1 < 0`, and `k` when the sum of all `k` given
    exponents is >= 0 (a truncated spectrum cannot tell more).

    Args:
        exponents: 1-D array-like of Lyapunov exponents (any order).

    Returns:
        A float; NaN when an exponent is NaN.

    Example:

    >>> kr.dynamics.kaplan_yorke_dimension([0.419, -1.623])
    1.258...
    """
    lam = check.array("exponents", exponents).astype("float64").ravel()
    if np.any(np.isnan(lam)):
        return float("nan")
    lam = -np.sort(-lam)
    with np.errstate(invalid="ignore"):
        partial = np.cumsum(lam)
    nonnegative = np.nonzero(partial >= 0)[0]
    if nonnegative.size == 0:
        return 0.0
    j = int(nonnegative[-1]) + 1  # number of exponents in the non-negative partial sum
    if j == lam.size:
        return float(lam.size)
    if not np.isfinite(partial[j - 1]):
        return float(lam.size) if partial[j - 1] > 0 else float("nan")
    return float(j + partial[j - 1] / abs(lam[j]))


class BatchEstimate:
    """The spread of an estimate made on each sequence of a batch.

    Each sequence of the probe batch gives one estimate (a row of
    `per_sequence`); the batch is a sample of them. Finite-time estimates of
    different sequences are correlated only through the shared weights, so
    the sample standard deviation over sequences is the spread a user means.
    """

    per_sequence: np.ndarray

    @property
    def std(self):
        """Sample standard deviation over the sequences (ddof 1; NaN for one)."""
        values = np.asarray(self.per_sequence, dtype="float64")
        if values.shape[0] < 2:
            return np.full(values.shape[1:], np.nan)
        with np.errstate(invalid="ignore"):
            return np.std(values, axis=0, ddof=1)

    @property
    def stderr(self):
        """Standard error of the batch mean: `std / sqrt(batch)`."""
        return self.std / np.sqrt(np.asarray(self.per_sequence).shape[0])

    def confidence_interval(self, level=0.95):
        """`(low, high)` arrays: a two-sided Student-t interval for the batch
        mean over sequences, `mean +- t_{(1 + level) / 2, batch - 1} * stderr`
        (the sequences taken as independent draws; NaN for one sequence).

        Args:
            level: the confidence level, a real number in (0, 1).
        """
        from scipy import stats

        level = check.real("level", level, minimum=0.0, maximum=1.0, min_open=True,
                           max_open=True)
        values = np.asarray(self.per_sequence, dtype="float64")
        batch = values.shape[0]
        mean = np.mean(values, axis=0)
        if batch < 2:
            nan = np.full(mean.shape, np.nan)
            return nan, nan.copy()
        half = stats.t.ppf(0.5 + level / 2, batch - 1) * self.stderr
        return mean - half, mean + half


@dataclasses.dataclass(frozen=True, eq=False)
class LyapunovSpectrum(BatchEstimate):
    """The Lyapunov spectrum of a recurrent cell along a batch of inputs.

    Attributes:
        exponents: `(k,)` NumPy array, natural log per time step, sorted
            descending, averaged over the batch (each trajectory's exponents
            are sorted before averaging).
        per_sequence: `(batch, k)` NumPy array, each row sorted descending.
        num_exponents: k.
        state_size: S, the size of the concatenated state.
        steps: T, the number of time steps of the inputs.
        warmup: steps before the exponents are accumulated.
        qr_interval: steps between re-orthonormalisations (or `"auto"`).
        seed: seed of the initial orthogonal frame.
        dtype: `"float32"` or `"float64"`.
        jacobian: `"analytic"` (the cell's tangent map) or `"autodiff"`.
        qr_method: `"householder"` or `"cholesky"` (CholeskyQR2).
        backend: the Keras backend that computed it.
        num_qr: the number of QR factorisations done.
        seconds: wall time of the computation.
        per_sequence_history: with `history=w`, `(batch, windows, k)`: the
            local exponents of each window of w steps after the warm-up (the
            last one may be shorter), columns in the order of each
            sequence's `per_sequence` row; else `None`.
        window_steps: with `history=w`, `(windows,)`: each window's length.

    Derived figures (properties): `max`, `mean`, `sum`,
    `kaplan_yorke_dimension`, `entropy_rate` (sum of the positive exponents,
    Pesin's bound on the Kolmogorov–Sinai entropy), `is_finite`, `history`
    (the batch mean of `per_sequence_history`), `std`, `stderr` and
    `confidence_interval(level)` (over sequences, Student t).
    """

    exponents: np.ndarray
    per_sequence: np.ndarray
    num_exponents: int
    state_size: int
    steps: int
    warmup: int
    qr_interval: int
    seed: int
    dtype: str
    jacobian: str
    qr_method: str
    backend: str
    num_qr: int = 0
    seconds: float = float("nan")
    per_sequence_history: np.ndarray = None
    window_steps: np.ndarray = None

    @property
    def max(self):
        """The largest exponent."""
        return float(self.exponents[0])

    @property
    def mean(self):
        """The mean of the k exponents."""
        with np.errstate(invalid="ignore"):
            return float(np.mean(self.exponents))

    @property
    def sum(self):
        """The sum of the k exponents (the volume contraction rate when k = S)."""
        with np.errstate(invalid="ignore"):
            return float(np.sum(self.exponents))

    @property
    def kaplan_yorke_dimension(self):
        """Kaplan–Yorke dimension (see `kaplan_yorke_dimension`)."""
        return kaplan_yorke_dimension(self.exponents)

    @property
    def entropy_rate(self):
        """Sum of the positive exponents (NaN when an exponent is NaN)."""
        if np.any(np.isnan(self.exponents)):
            return float("nan")
        return float(np.sum(self.exponents[self.exponents > 0]))

    @property
    def is_finite(self):
        """Whether every per-trajectory exponent is finite."""
        return bool(np.all(np.isfinite(self.per_sequence)))

    @property
    def history(self):
        """`(windows, k)`: the batch mean of the local exponents per window
        (`None` without `history=`). Their mean weighted by `window_steps` is
        `exponents`."""
        if self.per_sequence_history is None:
            return None
        return np.mean(self.per_sequence_history, axis=0)

    @property
    def running_estimate(self):
        """`(windows, k)`: the estimate after each window, the mean of the
        windows so far weighted by their lengths (converges to `exponents`)."""
        if self.per_sequence_history is None:
            return None
        weights = np.asarray(self.window_steps, dtype="float64")[:, None]
        return np.cumsum(self.history * weights, axis=0) / np.cumsum(weights, axis=0)

    def summary(self):
        """The figures the callbacks log: `{"max", "mean", "ky_dim"}` (floats)."""
        return {"max": self.max, "mean": self.mean, "ky_dim": self.kaplan_yorke_dimension}

    def __repr__(self):
        shown = np.array2string(self.exponents[:6], precision=4, separator=", ")
        more = ", ..." if self.num_exponents > 6 else ""
        return (
            f"LyapunovSpectrum(k={self.num_exponents}, S={self.state_size}, "
            f"max={self.max:.4g}, ky_dim={self.kaplan_yorke_dimension:.4g}, "
            f"exponents={shown[:-1]}{more}], batch={self.per_sequence.shape[0]}, "
            f"T={self.steps}, warmup={self.warmup}, dtype={self.dtype}, "
            f"jacobian={self.jacobian}, qr={self.qr_method}, backend={self.backend})"
        )
