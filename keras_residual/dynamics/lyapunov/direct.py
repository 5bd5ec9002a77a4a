"""`max_exponent_direct`: the largest exponent from two nearby trajectories, no Jacobian.

Benettin's direct method: run s and s' = s + delta u side by side through
the cell; every `renormalize_every` steps (and at the warm-up's end and the
last step) add log(|s' - s| / delta) to the sum (after the warm-up) and pull
s' back to distance delta along the current difference. Only the cell's own
step is used, so it checks the tangent maps and the QR loop independently.
"""

import dataclasses
import time
import warnings
from typing import NamedTuple

import keras
import numpy as np
from keras import ops

from keras_residual import _validation as check
from keras_residual.dynamics.lyapunov import cells
from keras_residual.dynamics.lyapunov import loop
from keras_residual.dynamics.lyapunov.carry import compensated_sum
from keras_residual.dynamics.lyapunov.result import BatchEstimate
from keras_residual.dynamics.lyapunov.spectrum import check_settings
from keras_residual.dynamics.lyapunov.spectrum import prepare


@dataclasses.dataclass(frozen=True, eq=False)
class MaxExponent(BatchEstimate):
    """The largest Lyapunov exponent by the direct (two-trajectory) method.

    Attributes:
        value: the batch mean of `per_sequence` (natural log per step).
        per_sequence: `(batch,)`, each sequence's estimate.
        steps, warmup, perturbation, renormalize_every, seed, dtype,
        backend, seconds: the settings and the wall time.

    `std`, `stderr` and `confidence_interval(level)` give the spread over
    sequences (Student t), as for `LyapunovSpectrum`.
    """

    value: float
    per_sequence: np.ndarray
    steps: int
    warmup: int
    perturbation: float
    renormalize_every: int
    seed: int
    dtype: str
    backend: str
    seconds: float = float("nan")

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return (f"MaxExponent(value={self.value:.4g}, batch={self.per_sequence.shape[0]}, "
                f"T={self.steps}, warmup={self.warmup}, perturbation={self.perturbation:g}, "
                f"renormalize_every={self.renormalize_every}, dtype={self.dtype}, "
                f"backend={self.backend})")


class _Pair(NamedTuple):
    """The carry: both trajectories stacked (2 * batch, S), the log-sum and
    its compensation (batch,)."""

    states: object
    log_sum: object
    compensation: object


def max_exponent_direct(cell_or_layer, inputs, warmup=0, initial_state=None,
                        perturbation=1e-6, renormalize_every=1, seed=None, dtype="float64"):
    """The largest Lyapunov exponent of a cell from two nearby trajectories.

    An independent check of `lyapunov_spectrum(...).max` that needs no
    Jacobian: each sequence's state s and a copy s' = s + delta u (u a
    seeded random unit vector) are stepped side by side; every
    `renormalize_every` steps the distance d = |s' - s| is measured,
    log(d / delta) is added (after the warm-up), and s' is pulled back to
    distance delta along s' - s (Benettin et al. 1976). The estimate is the
    sum over the steps after the warm-up, per step. With a finite delta it
    measures the growth of small but finite perturbations: keep delta small
    against the state's scale and the computation in float64 (float32
    rounds a difference of 1e-6 between states of order 1 to ~6 %).

    Args:
        cell_or_layer: an RNN cell or a `keras.layers.RNN` layer (its
            `go_backwards` honoured).
        inputs: `(batch, timesteps, features)` array.
        warmup: steps before the logs are summed, in [0, timesteps - 1].
        initial_state: as in `lyapunov_spectrum`.
        perturbation: delta, the distance between the trajectories, a real
            number in (0, 1).
        renormalize_every: steps between renormalisations, an integer >= 1
            (small enough that the distance stays small: growth over the
            interval must not reach the nonlinear scale).
        seed: seed of the direction u (`None` means 0).
        dtype: `"float64"` (default: the cell is copied to float64) or
            `"float32"`, or `None` for the cell's compute dtype.

    Returns:
        A `MaxExponent` (`value`, `per_sequence`, `std`, `stderr`,
        `confidence_interval()`). A distance that overflows or collapses to
        0 gives inf/nan for that sequence, with a `RuntimeWarning`.

    Example:

    >>> def henon(h, x, a=1.4, b=0.3):
    ...     return ops.stack([1 - a * h[:, 0] ** 2 + h[:, 1], b * h[:, 0]], axis=-1)
    >>> result = kr.dynamics.max_exponent_direct(
    ...     kr.dynamics.MapCell(henon, state_size=2), np.zeros((8, 3000, 1)),
    ...     initial_state=np.full((8, 2), 0.1), warmup=100)
    >>> round(result.value, 1)  # Henon: 0.42
    0.4
    """
    start = time.perf_counter()
    x = check.array("inputs", inputs, ndim=3)
    settings = check_settings(warmup=warmup, seed=seed, dtype=dtype, steps=x.shape[1])
    perturbation = check.real("perturbation", perturbation, minimum=0.0, maximum=1.0,
                              min_open=True, max_open=True)
    every = check.integer("renormalize_every", renormalize_every, minimum=1)
    ready = prepare(cell_or_layer, x, initial_state, settings["dtype"], "auto")
    warmup, seed, dtype = settings["warmup"], settings["seed"], ready.dtype
    steps, batch, size = ready.xs.shape[0], ready.xs.shape[1], ready.layout.size
    dynamics = loop.Dynamics(ready.work_cell, ready.layout, ready.mode, ready.backend)
    sum_dtype = "float64"
    delta = perturbation

    def body(carry, x_t, t, warmup, steps):
        both = dynamics.step(carry.states, ops.concatenate([x_t, x_t], axis=0))
        s, s_prime = both[:batch], both[batch:]
        due = (t % every == 0) | (t == warmup) | (t == steps)

        def renormalize():
            difference = s_prime - s
            distance = ops.sqrt(ops.sum(ops.square(difference), axis=-1))
            growth = ops.cast(ops.log(distance / delta), sum_dtype)
            log_sum, compensation = compensated_sum(
                carry.log_sum, carry.compensation,
                loop.choose(t > warmup, growth, ops.zeros_like(growth)))
            pulled = s + difference * ops.expand_dims(delta / distance, -1)
            return ops.concatenate([s, pulled], axis=0), log_sum, compensation

        def keep():
            return both, carry.log_sum, carry.compensation

        return _Pair(*loop.when(due, renormalize, keep))

    with loop.compute_scope(ready.backend, dtype, sum_dtype):
        h0 = ops.convert_to_tensor(ready.h0, dtype=dtype)
        u = ops.convert_to_tensor(cells.initial_frame(size, 1, seed, dtype)[:, 0], dtype=dtype)
        carry = _Pair(
            states=ops.concatenate([h0, h0 + delta * u[None, :]], axis=0),
            log_sum=ops.zeros((batch,), dtype=sum_dtype),
            compensation=ops.zeros((batch,), dtype=sum_dtype),
        )
        run = ready.backend.make_runner(body, ready.work_cell.variables, rare_qr=True)
        xs = ops.convert_to_tensor(np.ascontiguousarray(ready.xs), dtype=dtype)
        carry = run(carry, xs, 0, warmup, steps)
        sums = np.asarray(ops.convert_to_numpy(carry.log_sum + carry.compensation), "float64")
    with np.errstate(invalid="ignore"):
        per_sequence = sums / (steps - warmup)
        value = float(np.mean(per_sequence))
    if not np.all(np.isfinite(per_sequence)):
        warnings.warn(
            f"max_exponent_direct of cell {ready.cell.name!r}: "
            f"{int(np.sum(~np.isfinite(per_sequence)))} of {batch} sequences gave a non-finite "
            "estimate (the distance overflowed, or the trajectories merged to 0).",
            RuntimeWarning, stacklevel=2,
        )
    return MaxExponent(value=value, per_sequence=per_sequence, steps=steps, warmup=warmup,
                       perturbation=perturbation, renormalize_every=every, seed=seed,
                       dtype=dtype, backend=keras.backend.backend(),
                       seconds=time.perf_counter() - start)
