"""Statistics over seeds: mean ± std with a Student-t interval, grouping, tests.

A value that is `None` or not finite (a diverged run) is left out of a mean
and counted in `missing`, so a table can say "n = 3 of 5, 2 diverged"
instead of hiding it.
"""

import collections
import math

import numpy as np
from scipy import stats as scipy_stats

Summary = collections.namedtuple(
    "Summary", ["n", "mean", "std", "low", "high", "missing", "values"]
)
Summary.__doc__ = """Spread of one quantity over seeds.

Fields:
    n: finite values.
    mean, std: their mean and standard deviation (ddof 1; `nan` for n < 2).
    low, high: the 95 % Student-t interval of the mean,
        mean ± t(0.975, n - 1) · std / sqrt(n) (`nan` for n < 2).
    missing: values that were `None` or not finite (e.g. diverged runs).
    values: the finite values, in order.
"""


def _finite(values):
    kept, missing = [], 0
    for v in values:
        if v is None or isinstance(v, bool) or not math.isfinite(float(v)):
            missing += 1
        else:
            kept.append(float(v))
    return kept, missing


def summarize(values, confidence=0.95):
    """Mean, standard deviation and Student-t interval of `values`.

    Args:
        values: numbers (one per seed); `None` and non-finite ones are
            counted as missing.
        confidence: of the interval, in (0, 1).

    Returns:
        A `Summary`.

    Example:

    >>> from keras_residual.experiments import summarize
    >>> s = summarize([0.8, 0.9, 1.0, None])
    >>> s.n, round(s.mean, 3), round(s.std, 3), s.missing
    (3, 0.9, 0.1, 1)
    >>> round(s.low, 3), round(s.high, 3)  # 0.9 ± 4.303 * 0.1 / sqrt(3)
    (0.652, 1.148)
    """
    kept, missing = _finite(values)
    n = len(kept)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan, missing, [])
    mean = float(np.mean(kept))
    if n < 2:
        nan = float("nan")
        return Summary(1, mean, nan, nan, nan, missing, kept)
    std = float(np.std(kept, ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, missing, kept)


def format_summary(summary, digits=3, interval=True):
    """`"0.900 ± 0.100 (n=3) [0.652, 1.148]"`, or `"—"` with no value."""
    if summary.n == 0:
        text = "—"
    elif summary.n == 1:
        text = f"{summary.mean:.{digits}f} (n=1)"
    else:
        text = f"{summary.mean:.{digits}f} ± {summary.std:.{digits}f} (n={summary.n})"
        if interval:
            text += f" [{summary.low:.{digits}f}, {summary.high:.{digits}f}]"
    if summary.missing:
        text += f", {summary.missing} missing"
    return text


def format_number(value, digits=3):
    """A table cell: `"-"` for `None`, small floats in scientific notation.

    Example:

    >>> from keras_residual.experiments import format_number
    >>> format_number(0.12345), format_number(2e-5), format_number(None), format_number(7)
    ('0.123', '2.0e-05', '-', '7')
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def group(records, by):
    """Records grouped by configuration values: `{tuple of values: [records]}`.

    Args:
        records: run records (dicts with a `"config"`).
        by: configuration keys; a key may be a dotted path into nested dicts
            (`"residual.radius"`). A missing key groups as `None`.
    """
    groups = collections.OrderedDict()
    for record in records:
        values = tuple(lookup(record["config"], key) for key in by)
        groups.setdefault(values, []).append(record)
    return groups


def lookup(mapping, dotted, default=None):
    """`mapping["a"]["b"]` for `"a.b"`; `default` where a level is missing."""
    value = mapping
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def welch_p(a, b):
    """Two-sided p-value of Welch's t-test between two samples (`nan` when
    either has fewer than 2 finite values or both have no spread)."""
    a, _ = _finite(a)
    b, _ = _finite(b)
    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return float("nan")
    return float(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)


def fisher_p(successes_a, n_a, successes_b, n_b):
    """One-sided p-value of Fisher's exact test that group a succeeds more often."""
    table = [[successes_a, n_a - successes_a], [successes_b, n_b - successes_b]]
    return float(scipy_stats.fisher_exact(table, alternative="greater").pvalue)
