"""The characteristic frequency of a data set of sequences."""

import numpy as np

from keras_residual import _validation as check


def characteristic_frequency(x, return_spectrum=False):
    """Angle (radians per step) at the peak of the mean power spectrum.

    Computes the power spectrum `|rfft(x)|^2` of every sequence (and
    feature) along time, averages it over the batch and the features, drops
    the DC bin, and returns the angle `2 * pi * f_peak / T` of the largest
    remaining bin: the rotation per step that `kr.residuals.Rotational`
    should have to oscillate with the data. Pixel-wise MNIST (T = 784, rows
    of 28 pixels) gives `2 * pi / 28`.

    Args:
        x: array or tensor of sequences, `(batch, timesteps)` or
            `(batch, timesteps, features)`, at least 3 time steps, finite.
        return_spectrum: whether to also return the angles of the bins and
            the mean power of each.

    Returns:
        The angle as a float in `(0, pi]`; with `return_spectrum=True`, a
        tuple `(angle, angles, power)` where `angles` and `power` are 1-D
        NumPy arrays over the non-DC bins.

    Raises:
        ValueError: `x` is not of rank 2 or 3, has fewer than 3 steps, is
            not finite, or is constant in time (no power outside DC).

    Example:

    >>> t = np.arange(784)
    >>> x = np.sin(2 * np.pi * t / 28 + np.random.uniform(0, 6, (16, 1)))  # (16, 784)
    >>> angle = kr.dynamics.characteristic_frequency(x)
    >>> round(angle / (2 * np.pi / 28), 6)
    1.0
    >>> rho = kr.residuals.Rotational(angle=angle)
    """
    values = check.array("x", x, ndim=(2, 3), nonempty=False).astype("float64")
    if values.ndim == 2:
        values = values[:, :, None]
    steps = values.shape[1]
    if steps < 3 or values.shape[0] == 0 or values.shape[2] == 0:
        raise ValueError(
            "Argument `x` must have at least one sequence of at least 3 time steps; "
            f"received shape {np.shape(x)}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError("Argument `x` must be finite; it contains NaN or inf.")
    spectrum = np.mean(np.abs(np.fft.rfft(values, axis=1)) ** 2, axis=(0, 2))
    power = spectrum[1:]
    # A constant signal has only DC power; what the FFT leaves in the other
    # bins is rounding, ~eps relative to the signal's amplitude.
    total = float(np.sum(spectrum))
    if total == 0.0 or np.sqrt(power.max() / total) <= 1e3 * np.finfo("float64").eps:
        raise ValueError(
            "Argument `x` has no power outside the constant (DC) component: every "
            "sequence is constant in time, so it has no characteristic frequency; "
            f"received shape {np.shape(x)} with a time-constant signal."
        )
    angles = 2.0 * np.pi * np.arange(1, power.size + 1) / steps
    angle = float(angles[int(np.argmax(power))])
    if return_spectrum:
        return angle, angles, power
    return angle
