"""The papers' kinds of figures, drawn from run records with matplotlib.

- `plot_score_vs`: a score against a setting (log r, angle / angle0, a
  learning rate), mean ± std over seeds with every seed's point;
- `plot_curves`: convergence curves, the mean over seeds with a band of
  ± one standard deviation.

Each takes a matplotlib `Axes` (so figures can be composed) and records
already grouped by the caller; `new_figure` gives an off-screen figure.
"""

import math

import numpy as np

from keras_residual.experiments import stats


def new_figure(rows=1, cols=1, width=4.2, height=3.2):
    """An off-screen (Agg) figure and its axes, always a 2-D array."""
    from matplotlib.figure import Figure  # no pyplot state: safe in sweeps and tests

    fig = Figure(figsize=(width * cols, height * rows))
    return fig, fig.subplots(rows, cols, squeeze=False)


def _value(record, key):
    value = stats.lookup(record["result"], key)
    return float("nan") if value is None else float(value)


def plot_score_vs(ax, groups, x, y, label=None, color=None, marker="o"):
    """Mean ± std of `y` against `x`, with each seed's value as a dot.

    Args:
        ax: a matplotlib Axes.
        groups: `{x value: [records]}` (e.g. from `stats.group`), any order.
        x: function `key -> float` turning a group key into the x position
            (e.g. `lambda key: math.log(key[0])`).
        y: the result's key (dotted for nested values), e.g. `"test_score"`.
        label, color, marker: of the mean line.
    """
    points = sorted((x(key), [_value(r, y) for r in records]) for key, records in groups.items())
    xs = np.array([p[0] for p in points])
    summaries = [stats.summarize(p[1]) for p in points]
    means = np.array([s.mean for s in summaries])
    stds = np.array([0.0 if s.n < 2 else s.std for s in summaries])
    line = ax.errorbar(xs, means, yerr=stds, marker=marker, ms=4, capsize=3, label=label,
                       color=color)
    for position, (_, values) in zip(xs, points):
        finite = [v for v in values if math.isfinite(v)]
        ax.plot([position] * len(finite), finite, ".", ms=3, alpha=0.4,
                color=line[0].get_color())
    return line


def curve_band(records, x, y, curve="curve"):
    """`(steps, mean, std, n)` of a per-evaluation value over seeds.

    Curves are aligned by their `x` values; a run stopped early (at its
    target, or diverged) counts only where it has values, and `n` says how
    many runs each point averages.
    """
    table = {}
    for record in records:
        for point in record["result"].get(curve) or []:
            value = point.get(y)
            if value is not None and math.isfinite(value):
                table.setdefault(point[x], []).append(float(value))
    steps = np.array(sorted(table))
    mean = np.array([np.mean(table[s]) for s in steps])
    std = np.array([np.std(table[s], ddof=1) if len(table[s]) > 1 else 0.0 for s in steps])
    n = np.array([len(table[s]) for s in steps])
    return steps, mean, std, n


def plot_curves(ax, records, x="step", y="val_metric", label=None, color=None, curve="curve"):
    """The mean curve over seeds with a ± std band (`curve_band`)."""
    steps, mean, std, n = curve_band(records, x, y, curve)
    if len(steps) == 0:
        return None
    label = f"{label} (n={max(n)})" if label is not None else None
    (line,) = ax.plot(steps, mean, label=label, color=color)
    ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=line.get_color())
    return line


def save(fig, path):
    """Save a figure (folders created), 110 dpi."""
    import os

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
