"""Plots of Lyapunov spectra (matplotlib, an optional dependency)."""

import numpy as np

from keras_residual import _validation as check


def _matplotlib_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            "kr.dynamics.plot_spectra needs matplotlib, an optional dependency of "
            "keras-residual: pip install matplotlib (or pip install 'keras-residual[examples]')."
        ) from error
    return Figure


def _spectra_of(source):
    """(epochs, spectra) from a LyapunovCallback, results or an array."""
    from keras_residual.dynamics.lyapunov.result import LyapunovSpectrum

    if hasattr(source, "spectra") and hasattr(source, "epochs"):
        spectra = np.asarray(source.spectra, dtype="float64")
        epochs = np.asarray(source.epochs)
    elif isinstance(source, LyapunovSpectrum):
        spectra = source.exponents[None, :]
        epochs = np.arange(1)
    elif isinstance(source, (list, tuple)) and source and all(
        isinstance(s, LyapunovSpectrum) for s in source
    ):
        spectra = np.stack([s.exponents for s in source])
        epochs = np.arange(len(source))
    else:
        spectra = check.array("source", source, nonempty=False).astype("float64")
        if spectra.ndim == 1:
            spectra = spectra[None, :]
        epochs = np.arange(spectra.shape[0])
    if spectra.ndim != 2 or spectra.size == 0:
        raise ValueError(
            "Argument `source` of plot_spectra must be a LyapunovCallback, a "
            "LyapunovSpectrum, a list of them, or an (epochs, k) array; received an array "
            f"of shape {spectra.shape}."
        )
    return epochs, spectra


def plot_spectra(source, path=None, ax=None, title=None, max_lines=None):
    """Plot Lyapunov spectra over training epochs.

    One line per exponent against the epoch (the callback's epoch -1 is the
    spectrum before training), with the zero line that separates contracting
    from expanding directions. A single spectrum is drawn against the
    exponent's index instead.

    Args:
        source: a `kr.callbacks.LyapunovCallback` (after `fit`), a
            `LyapunovSpectrum`, a list of them, or an `(epochs, k)` array.
        path: file to save the figure to (any format matplotlib writes);
            `None` does not save.
        ax: a matplotlib `Axes` to draw on; `None` makes a new figure.
        title: optional title.
        max_lines: draw at most this many exponents (the largest ones);
            `None` draws all.

    Returns:
        The matplotlib `Figure`.

    Raises:
        ImportError: matplotlib is not installed (with the install command).

    Example:

    >>> spectra = np.array([[0.00, -0.22, -0.51],  # (evaluations, k), as in
    ...                     [0.01, -0.15, -0.40],  # LyapunovCallback.spectra
    ...                     [0.02, -0.10, -0.35]])
    >>> figure = kr.dynamics.plot_spectra(spectra, title="WCRNN(8)")
    >>> len(figure.axes[0].lines)  # one line per exponent, and the zero line
    4
    >>> figure = kr.dynamics.plot_spectra(spectra[-1])  # a single spectrum
    >>> figure.axes[0].get_xlabel()
    'exponent index i'

    After `model.fit(..., callbacks=[callback])` with a
    `kr.callbacks.LyapunovCallback`, `plot_spectra(callback, path="spectra.png")`
    draws its spectra against the epochs and saves the figure.
    """
    epochs, spectra = _spectra_of(source)
    Figure = _matplotlib_figure()
    if ax is None:
        figure = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    max_lines = check.positive_int("max_lines", max_lines, allow_none=True)
    title = check.string("title", title, allow_none=True)
    if max_lines is not None:
        spectra = spectra[:, :max_lines]
    k = spectra.shape[1]
    if spectra.shape[0] == 1:
        ax.plot(np.arange(1, k + 1), spectra[0], marker="o", markersize=3, linewidth=1)
        ax.set_xlabel("exponent index i")
    else:
        colors = [_viridis(i / max(1, k - 1)) for i in range(k)]
        for i in range(k):
            ax.plot(epochs, spectra[:, i], color=colors[i], linewidth=1.0)
        ax.set_xlabel("epoch (-1: before training)")
    ax.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_ylabel("Lyapunov exponent (per step)")
    if title:
        ax.set_title(title)
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def plot_convergence(result, path=None, ax=None, title=None, max_lines=None, band=True):
    """Plot the running estimate of a spectrum against time, to judge convergence.

    From a `lyapunov_spectrum(..., history=w)` result: after each window of
    w steps (after the warm-up), the estimate so far (the windows' mean
    weighted by their lengths, `result.running_estimate`), one line per
    exponent, ending at `result.exponents`; with `band=True`, the
    spread over sequences of each running estimate (+- one standard
    deviation) as a shaded band.

    Args:
        result: a `LyapunovSpectrum` computed with `history=`.
        path: file to save the figure to; `None` does not save.
        ax: a matplotlib `Axes` to draw on; `None` makes a new figure.
        title: optional title.
        max_lines: draw at most this many exponents (the largest).
        band: whether to shade +- one standard deviation over sequences.

    Returns:
        The matplotlib `Figure`.

    Example:

    >>> layer = kr.layers.WCRNN(4, coupling=0.5)
    >>> x = np.random.default_rng(0).normal(size=(4, 120, 1)).astype("float32")
    >>> _ = layer(x)
    >>> spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=20, history=10)
    >>> figure = kr.dynamics.plot_convergence(spectrum, max_lines=2)
    >>> len(figure.axes[0].lines)  # two running estimates and the zero line
    3
    """
    from keras_residual.dynamics.lyapunov.result import LyapunovSpectrum

    if not isinstance(result, LyapunovSpectrum) or result.per_sequence_history is None:
        raise ValueError(
            "Argument `result` of plot_convergence must be a LyapunovSpectrum computed "
            "with history=<steps per window> (lyapunov_spectrum(..., history=10), say); "
            f"received {type(result).__name__}"
            + ("" if not isinstance(result, LyapunovSpectrum) else " without a history") + "."
        )
    Figure = _matplotlib_figure()
    if ax is None:
        figure = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    max_lines = check.positive_int("max_lines", max_lines, allow_none=True)
    title = check.string("title", title, allow_none=True)
    weights = np.asarray(result.window_steps, dtype="float64")
    running = np.cumsum(result.per_sequence_history * weights[None, :, None], axis=1)
    running = running / np.cumsum(weights)[None, :, None]  # (batch, windows, k)
    steps = result.warmup + np.cumsum(weights)
    k = running.shape[-1] if max_lines is None else min(max_lines, running.shape[-1])
    colors = [_viridis(i / max(1, k - 1)) for i in range(k)]
    mean = running.mean(axis=0)
    spread = running.std(axis=0, ddof=1) if running.shape[0] > 1 else None
    for i in range(k):
        ax.plot(steps, mean[:, i], color=colors[i], linewidth=1.0)
        if band and spread is not None:
            ax.fill_between(steps, mean[:, i] - spread[:, i], mean[:, i] + spread[:, i],
                            color=colors[i], alpha=0.2, linewidth=0)
    ax.axhline(0.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xlabel("time step (after the warm-up)")
    ax.set_ylabel("running estimate of the exponent (per step)")
    if title:
        ax.set_title(title)
    if path is not None:
        figure.savefig(path, dpi=120)
    return figure


def _viridis(fraction):
    from matplotlib import colormaps

    return colormaps["viridis"](fraction)
