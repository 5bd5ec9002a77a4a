"""`covariant_lyapunov_vectors`: the covariant Lyapunov vectors by Ginelli's method.

Forward: the QR iteration Q_t R_t = J_t Q_{t-1} (a QR every step), keeping
Q_t and R_t after the warm-up. Backward: from a seeded random
upper-triangular C_T, iterate C_{t-1} = R_t^{-1} C_t with its columns
normalised, for `backward_warmup` steps (the transient) and then through the
window, where the covariant vectors are V_t = Q_t C_t, columns normalised
(Ginelli et al., PRL 99, 130601, 2007). They satisfy J_t V_{t-1} ~ V_t column
by column, and for a fixed linear map they are its eigenvectors, which the
Gram–Schmidt vectors Q_t are not unless the map is normal.
"""

import dataclasses
import time

import keras
import numpy as np
from keras import ops

from keras_residual import _validation as check
from keras_residual.dynamics.lyapunov import loop
from keras_residual.dynamics.lyapunov import cells
from keras_residual.dynamics.lyapunov import qr as qr_lib
from keras_residual.dynamics.lyapunov.spectrum import check_settings
from keras_residual.dynamics.lyapunov.spectrum import prepare


@dataclasses.dataclass(frozen=True, eq=False)
class CovariantVectors:
    """Covariant Lyapunov vectors along a batch of trajectories.

    Attributes:
        vectors: `(batch, window, S, k)` NumPy array: at each step t of the
            window, the k covariant vectors of the state s_t (unit columns,
            in the order of the exponents, each up to its sign).
        states: `(batch, window, S)`: the states s_t the vectors belong to.
        steps: the window's steps (1-based time steps of the inputs),
            `(window,)`.
        exponents: `(k,)` the exponents of the forward QR iteration over the
            steps after the warm-up (batch mean; natural log per step).
        warmup, backward_warmup, seed, dtype, backend, seconds.

    `angles` is `(batch, window, k, k)`: the angle in [0, pi/2] between
    each pair of vectors (their principal angle, as a vector's sign is
    arbitrary); `min_angle` `(batch, window)` the smallest over the pairs, a
    measure of how close to tangent the directions come.
    """

    vectors: np.ndarray
    states: np.ndarray
    steps: np.ndarray
    exponents: np.ndarray
    warmup: int
    backward_warmup: int
    seed: int
    dtype: str
    backend: str
    seconds: float = float("nan")

    @property
    def angles(self):
        cosines = np.abs(np.einsum("bwsi,bwsj->bwij", self.vectors, self.vectors))
        return np.arccos(np.clip(cosines, 0.0, 1.0))

    @property
    def min_angle(self):
        k = self.vectors.shape[-1]
        if k < 2:
            return np.full(self.vectors.shape[:2], np.nan)
        upper = np.triu_indices(k, 1)
        return self.angles[..., upper[0], upper[1]].min(axis=-1)


def covariant_lyapunov_vectors(cell_or_layer, inputs, num_vectors=None, warmup=0,
                               backward_warmup=0, initial_state=None, seed=None,
                               dtype="float64"):
    """The covariant Lyapunov vectors of a cell along input sequences (Ginelli).

    The steps of `inputs` split into a forward warm-up (`warmup` steps, for
    the Gram–Schmidt frame to converge), the window the vectors are returned
    for, and a backward warm-up at the end (`backward_warmup` steps, for the
    backward iteration to converge): the window is steps
    `warmup + 1 .. timesteps - backward_warmup`. A QR every step.

    Memory: the forward pass keeps s_t (S), Q_t (S x k) and R_t (k x k) of
    every step after the warm-up, and the result holds the vectors and
    states of the window: `batch * (timesteps - warmup) * (S + S * k + k * k)`
    plus `batch * window * (S * k + S)` numbers (float64 by default).

    Args:
        cell_or_layer: an RNN cell or a `keras.layers.RNN` layer.
        inputs: `(batch, timesteps, features)` array.
        num_vectors: k, `None` (all S) or an integer in [1, S].
        warmup: forward warm-up steps, >= 0.
        backward_warmup: backward warm-up steps, >= 0; together with
            `warmup` less than timesteps.
        initial_state: as in `lyapunov_spectrum`.
        seed: seed of the initial frame Q_0 and of the backward start C_T.
        dtype: `"float64"` (default), `"float32"` or `None` (the cell's).

    Returns:
        A `CovariantVectors` (`vectors`, `steps`, `exponents`, `angles`).

    Example:

    A fixed non-normal linear map: its covariant vectors are its
    eigenvectors, (1, 0) and (1, -1) / sqrt(2), not the orthonormal
    Gram–Schmidt frame.

    >>> A = np.array([[2.0, 1.5], [0.0, 0.5]])
    >>> cell = kr.dynamics.MapCell(lambda h, x: ops.matmul(h, ops.transpose(A)), 2)
    >>> clv = kr.dynamics.covariant_lyapunov_vectors(
    ...     cell, np.zeros((1, 60, 1)), initial_state=np.ones((1, 2)), warmup=20,
    ...     backward_warmup=20)
    >>> np.round(np.abs(clv.vectors[0, 0]), 3).tolist()  # columns: the eigenvectors
    [[1.0, 0.707], [0.0, 0.707]]
    >>> np.round(clv.exponents, 3).tolist()  # log 2, log 0.5
    [0.693, -0.693]
    """
    start = time.perf_counter()
    x = check.array("inputs", inputs, ndim=3)
    steps = x.shape[1]
    settings = check_settings(warmup=warmup, seed=seed, dtype=dtype, steps=steps)
    warmup, seed = settings["warmup"], settings["seed"]
    backward_warmup = check.integer(
        "backward_warmup", backward_warmup, minimum=0, maximum=steps - warmup - 1,
        allowed=f"an integer in [0, timesteps - warmup - 1 = {steps - warmup - 1}]",
    )
    ready = prepare(cell_or_layer, x, initial_state, settings["dtype"], "auto")
    size = ready.layout.size
    k = check.integer("num_vectors", num_vectors, minimum=1, maximum=size, allow_none=True,
                      allowed=f"None or an integer in [1, state size = {size}]") or size
    dtype = ready.dtype
    dynamics = loop.Dynamics(ready.work_cell, ready.layout, ready.mode, ready.backend)

    def forward(carry, x_t):
        # The carry is also the step's output (Keras' TensorFlow scan wants
        # them alike): the states, Q_t and R_t of every step.
        s, Q, _ = carry
        s_new, Z = dynamics.propagate(s, Q, x_t)
        Q_new, R = qr_lib.qr_with_r(Z)
        carry = (ops.cast(s_new, dtype), Q_new, R)
        return carry, carry

    with loop.compute_scope(ready.backend, dtype):
        batch = ready.xs.shape[1]
        frame = cells.initial_frame(size, k, seed, dtype)
        carry = (ops.convert_to_tensor(ready.h0, dtype=dtype),
                 ops.convert_to_tensor(np.broadcast_to(frame, (batch, size, k)), dtype=dtype),
                 ops.zeros((batch, k, k), dtype=dtype))
        xs = ops.convert_to_tensor(np.ascontiguousarray(ready.xs), dtype=dtype)
        scan = ready.backend.scan
        if warmup:
            carry, _ = scan(forward, carry, xs[:warmup])
        _, (states, Qs, Rs) = scan(forward, carry, xs[warmup:])
        states = np.asarray(ops.convert_to_numpy(states), "float64")  # (T - warmup, batch, S)
        Qs = np.asarray(ops.convert_to_numpy(Qs), "float64")  # (T - warmup, batch, S, k)
        Rs = np.asarray(ops.convert_to_numpy(Rs), "float64")  # (T - warmup, batch, k, k)

    diagonals = np.abs(np.diagonal(Rs, axis1=-2, axis2=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        exponents = np.mean(np.log(diagonals), axis=0).mean(axis=0)
    C = np.triu(np.random.default_rng(seed).uniform(0.5, 1.5, size=(k, k)))
    C = np.broadcast_to(C / np.linalg.norm(C, axis=0), (batch, k, k)).copy()
    window = steps - warmup - backward_warmup
    vectors = np.empty((batch, window, size, k))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(Qs.shape[0] - 1, -1, -1):  # i: step warmup + 1 + i
            if i < window:
                V = Qs[i] @ C
                vectors[:, i] = V / np.linalg.norm(V, axis=-2, keepdims=True)
            C = np.linalg.solve(Rs[i], C)
            C = C / np.linalg.norm(C, axis=-2, keepdims=True)
    return CovariantVectors(
        vectors=vectors, states=np.swapaxes(states[:window], 0, 1),
        steps=np.arange(warmup + 1, warmup + 1 + window),
        exponents=exponents, warmup=warmup, backward_warmup=backward_warmup, seed=seed,
        dtype=dtype, backend=keras.backend.backend(), seconds=time.perf_counter() - start,
    )
