"""Diagnostics of the Lyapunov engine against independent references, on every backend:
exponents over time (history), their spread over sequences, the direct largest
exponent (Benettin) and covariant Lyapunov vectors (Ginelli)."""

import math

import keras
import numpy as np
import pytest
from keras import ops

import keras_residual as kr
from keras_residual import residuals

RNG = np.random.default_rng(11)


def _gains(h, x):
    """h_t = diag(e^{x}, e^{x - 1}) h: the local exponents of step t are x_t
    and x_t - 1 exactly, so any window's exponents are known."""
    return h * ops.exp(ops.concatenate([x, x - 1.0], axis=-1))


def _lstm():
    layer = keras.layers.LSTM(4, kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                              recurrent_initializer=keras.initializers.Orthogonal(1.5, seed=2))
    return layer


def _wcrnn():
    return kr.layers.WCRNN(
        6, coupling=0.8, residual=residuals.Rotational(radius=0.95, angle_range=(0.1, 1.0), seed=3),
        kernel_initializer=keras.initializers.GlorotUniform(seed=4),
        recurrent_initializer=keras.initializers.Orthogonal(gain=1.5, seed=5))


# ----------------------------------------------------------- history


@pytest.mark.parametrize("qr_interval", [1, 4, "auto"])
def test_history_windows_are_the_known_local_exponents(qr_interval):
    x = RNG.normal(scale=0.3, size=(3, 95, 1))
    cell = kr.dynamics.MapCell(_gains, state_size=2)
    spectrum = kr.dynamics.lyapunov_spectrum(
        cell, x, initial_state=np.ones((3, 2)), warmup=15, history=20, dtype="float64",
        qr_interval=qr_interval)
    # Windows of 20 steps after the warm-up, the last one 80 - 60 = 20 long.
    assert spectrum.per_sequence_history.shape == (3, 4, 2)
    np.testing.assert_array_equal(spectrum.window_steps, [20, 20, 20, 20])
    local = x[:, 15:, 0].reshape(3, 4, 20).mean(axis=-1)
    expected = np.stack([local, local - 1.0], axis=-1)
    # The frame starts random: its second column aligns with the contracting
    # direction as e^(-t) (gap 1 per step), so after the 15-step warm-up the
    # misalignment is e^-15 = 3e-7; float64 otherwise.
    np.testing.assert_allclose(spectrum.per_sequence_history, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", [_lstm, _wcrnn], ids=["lstm", "wcrnn"])
def test_history_adds_up_to_the_exponents_and_matches_the_numpy_reference(make):
    layer = make()
    x = RNG.normal(size=(3, 70, 2)).astype("float32")
    layer(x[:, :2])
    spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=10, history=25, dtype="float64",
                                             qr_interval=1)
    np.testing.assert_array_equal(spectrum.window_steps, [25, 25, 10])
    weights = spectrum.window_steps[None, :, None]
    weighted = (spectrum.per_sequence_history * weights).sum(axis=1) / weights.sum()
    # The windows' weighted mean is the estimate, up to float64 sums (1e-15).
    np.testing.assert_allclose(weighted, spectrum.per_sequence, rtol=0, atol=1e-12)
    np.testing.assert_allclose(spectrum.history, spectrum.per_sequence_history.mean(0))
    np.testing.assert_allclose(spectrum.running_estimate[-1], spectrum.exponents, atol=1e-12)
    # After m windows the running estimate is the NumPy reference's spectrum
    # of the inputs cut there: the same trajectory and QRs, by other code.
    for m, stop in enumerate((35, 60)):
        reference = kr.dynamics.lyapunov_spectrum_numpy(layer, x[:, :stop], warmup=10)
        sums = (spectrum.per_sequence_history[:, :m + 1] * weights[:, :m + 1]).sum(axis=1)
        ours = -np.sort(-sums / (stop - 10), axis=-1)
        # float64 against float64 (measured <= 1e-13).
        np.testing.assert_allclose(ours, reference.per_sequence, rtol=0, atol=1e-10)


def test_history_costs_nothing_when_not_asked_and_checks_its_argument():
    layer = _wcrnn()
    x = RNG.normal(size=(2, 30, 2)).astype("float32")
    layer(x)
    plain = kr.dynamics.lyapunov_spectrum(layer, x)
    assert plain.per_sequence_history is None and plain.history is None
    windowed = kr.dynamics.lyapunov_spectrum(layer, x, history=7)
    # Extra QRs at the windows' ends change the float32 rounding only
    # (exact in exact arithmetic): a few eps32 per QR.
    np.testing.assert_allclose(windowed.exponents, plain.exponents, rtol=0, atol=1e-5)
    for bad, error in ((0, ValueError), (31, ValueError), (2.5, TypeError), ("10", TypeError)):
        with pytest.raises(error, match="history"):
            kr.dynamics.lyapunov_spectrum(layer, x, history=bad)


def test_plot_convergence(tmp_path):
    pytest.importorskip("matplotlib")
    layer = _wcrnn()
    x = RNG.normal(size=(3, 60, 2)).astype("float32")
    layer(x)
    spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=10, history=10)
    path = tmp_path / "convergence.png"
    figure = kr.dynamics.plot_convergence(spectrum, path=str(path), max_lines=3)
    assert path.stat().st_size > 1000
    line = figure.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), spectrum.running_estimate[:, 0], atol=1e-12)
    np.testing.assert_array_equal(line.get_xdata(), [20, 30, 40, 50, 60])
    with pytest.raises(ValueError, match="history="):
        kr.dynamics.plot_convergence(kr.dynamics.lyapunov_spectrum(layer, x))


# ----------------------------------------------------------- spread over sequences


def test_spread_over_sequences_of_known_per_sequence_exponents():
    # h_t = e^{x_b} h with a constant x_b per sequence: lambda_b = x_b exactly.
    rates = np.array([-0.3, -0.1, 0.05, 0.2, 0.4])
    x = np.repeat(rates[:, None, None], 40, axis=1)
    cell = kr.dynamics.MapCell(lambda h, x: h * ops.exp(x), state_size=1)
    spectrum = kr.dynamics.lyapunov_spectrum(cell, x, initial_state=np.ones((5, 1)),
                                             dtype="float64")
    np.testing.assert_allclose(spectrum.per_sequence[:, 0], rates, atol=1e-12)
    # Sample std (ddof 1) of the five rates, by hand: 0.27386...
    assert spectrum.std[0] == pytest.approx(math.sqrt(np.sum((rates - 0.05) ** 2) / 4))
    assert spectrum.stderr[0] == pytest.approx(spectrum.std[0] / math.sqrt(5))
    low, high = spectrum.confidence_interval(0.95)
    # Student t with 4 degrees of freedom: t_0.975 = 2.7764.
    assert high[0] - 0.05 == pytest.approx(2.7764451 * spectrum.stderr[0], rel=1e-6)
    assert low[0] == pytest.approx(0.05 - (high[0] - 0.05))
    wider = spectrum.confidence_interval(0.99)
    assert wider[1][0] > high[0]
    for bad in (0.0, 1.0, 95, "0.95"):
        with pytest.raises((ValueError, TypeError), match="level"):
            spectrum.confidence_interval(bad)
    one = kr.dynamics.lyapunov_spectrum(cell, x[:1], initial_state=np.ones((1, 1)))
    assert np.isnan(one.std).all() and np.isnan(one.confidence_interval()[0]).all()


# ----------------------------------------------------------- direct largest exponent


def test_direct_exponent_of_a_linear_map_is_log_of_its_spectral_radius():
    # A non-normal contracting map (states stay of order 1, so the two
    # trajectories' difference is not lost to rounding) whose largest
    # singular value (1.04) is not its spectral radius (0.8).
    A = np.array([[2.0, 1.5, 0.0], [0.0, 0.5, 0.3], [0.0, 0.0, -1.2]]) / 2.5
    cell = kr.dynamics.MapCell(lambda h, x: ops.matmul(h, ops.transpose(A)), state_size=3)
    result = kr.dynamics.max_exponent_direct(cell, np.zeros((2, 200, 1)),
                                             initial_state=np.ones((2, 3)), warmup=50)
    # After the 50-step warm-up the direction has aligned with the leading
    # eigenvector to (0.48 / 0.8)^50 = 8e-12; each renormalisation then
    # measures log 0.8 exactly (the map is linear) up to float64 rounding.
    np.testing.assert_allclose(result.per_sequence, math.log(0.8), atol=1e-9)
    assert result.per_sequence.shape == (2,) and result.dtype == "float64"


def test_direct_exponent_of_the_henon_map():
    def henon(h, x, a=1.4, b=0.3):
        return ops.stack([1.0 - a * h[:, 0] ** 2 + h[:, 1], b * h[:, 0]], axis=-1)

    h0 = np.array([0.1, 0.1]) + RNG.uniform(-0.05, 0.05, size=(8, 2))
    result = kr.dynamics.max_exponent_direct(kr.dynamics.MapCell(henon, 2),
                                             np.zeros((8, 2000, 1)), initial_state=h0,
                                             warmup=100, renormalize_every=2)
    # The attractor's exponent 0.419, estimated over 8 x 1900 steps (local
    # rates with std ~0.5: standard error ~4e-3, 0.02 ~ 5 of them).
    assert result.value == pytest.approx(0.419, abs=0.02)
    low, high = result.confidence_interval()
    assert low < result.value < high


@pytest.mark.parametrize("make", [_lstm, _wcrnn], ids=["lstm", "wcrnn"])
def test_direct_exponent_agrees_with_the_qr_spectrum(make):
    layer = make()
    x = RNG.normal(size=(4, 150, 2)).astype("float32")
    layer(x[:, :2])
    # One exponent: the QR loop's first column alone, whatever the others do.
    spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=30, dtype="float64",
                                             qr_interval=1, num_exponents=1)
    direct = kr.dynamics.max_exponent_direct(layer, x, warmup=30)
    # No Jacobian against the tangent maps. The perturbation starts along
    # Q_0's first column (the same seed), which the QR loop's first column
    # follows: the two differ by the O(delta) nonlinearity of a finite
    # perturbation (delta = 1e-6 times the step's curvature, O(1)) and
    # float64 rounding (measured <= 4e-8).
    np.testing.assert_allclose(direct.per_sequence, spectrum.per_sequence[:, 0], atol=1e-6)


def test_direct_exponent_arguments():
    layer = _lstm()
    x = RNG.normal(size=(2, 20, 2)).astype("float32")
    for kwargs, match in [({"perturbation": 0.0}, "perturbation"), ({"perturbation": 2.0},
                          "perturbation"), ({"renormalize_every": 0}, "renormalize_every"),
                          ({"warmup": 20}, "warmup"), ({"dtype": "float16"}, "dtype")]:
        with pytest.raises((ValueError, TypeError), match=match):
            kr.dynamics.max_exponent_direct(layer, x, **kwargs)


# ----------------------------------------------------------- covariant Lyapunov vectors


def test_covariant_vectors_of_a_non_normal_map_are_its_eigenvectors():
    A = np.array([[2.0, 1.5, 0.4], [0.0, 0.5, 0.3], [0.0, 0.0, -1.2]])
    cell = kr.dynamics.MapCell(lambda h, x: ops.matmul(h, ops.transpose(A)), state_size=3)
    clv = kr.dynamics.covariant_lyapunov_vectors(
        cell, np.zeros((2, 90, 1)), initial_state=np.ones((2, 3)), warmup=30,
        backward_warmup=30)
    assert clv.vectors.shape == (2, 30, 3, 3)
    values, vectors = np.linalg.eig(A)
    order = np.argsort(-np.abs(values))  # 2, -1.2, 0.5
    eigenvectors = vectors[:, order] / np.linalg.norm(vectors[:, order], axis=0)
    # Up to each vector's sign; forward and backward transients of 30 steps
    # decay as (1.2 / 2)^30 and (0.5 / 1.2)^30: below 3e-7.
    cosines = np.abs(np.einsum("bwsi,si->bwi", clv.vectors, eigenvectors))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-6)
    np.testing.assert_allclose(clv.exponents, np.log(np.abs(values[order])), atol=1e-9)
    # The Gram-Schmidt frame is orthonormal, so it is not them: the
    # eigenvectors of 2 and 0.5 lie 45 degrees apart.
    assert np.degrees(clv.angles[0, 0, 0, 2]) == pytest.approx(45.0, abs=1e-4)
    assert np.degrees(clv.min_angle[0, 0]) == pytest.approx(45.0, abs=1e-4)


def test_covariant_vectors_are_carried_by_the_jacobian_of_a_time_varying_map():
    """h_t = A(x_t) h_{t-1} with a non-normal A(x) driven by the inputs: the
    Jacobian J_t = A(x_t) is known from the inputs alone, so J_t V_{t-1}
    must be parallel to V_t (covariance), which the Gram-Schmidt frame is
    not."""

    def matrices(x):  # (batch, 1) -> (batch, 3, 3)
        x = np.asarray(x)[:, 0]
        A = np.zeros((x.shape[0], 3, 3))
        A[:, 0, 0], A[:, 0, 1], A[:, 0, 2] = 1.5 + 0.5 * np.sin(x), 1.2, 0.3
        A[:, 1, 1], A[:, 1, 2], A[:, 2, 2] = 0.6 + 0.2 * x, -0.8, 0.3
        A[:, 2, 0] = 0.1 * x
        return A

    def step(h, x):
        s = ops.sin(x[:, 0])
        row0 = (1.5 + 0.5 * s) * h[:, 0] + 1.2 * h[:, 1] + 0.3 * h[:, 2]
        row1 = (0.6 + 0.2 * x[:, 0]) * h[:, 1] - 0.8 * h[:, 2]
        row2 = 0.1 * x[:, 0] * h[:, 0] + 0.3 * h[:, 2]
        return ops.stack([row0, row1, row2], axis=-1)

    x = RNG.normal(scale=0.5, size=(2, 120, 1))
    clv = kr.dynamics.covariant_lyapunov_vectors(
        kr.dynamics.MapCell(step, 3), x, initial_state=np.ones((2, 3)), warmup=30,
        backward_warmup=30)
    for i in range(1, clv.vectors.shape[1]):
        t = clv.steps[i]  # V_t at s_t; J_t = A(x_t), x_t the t-th input (1-based)
        carried = np.einsum("bij,bjk->bik", matrices(x[:, t - 1]), clv.vectors[:, i - 1])
        carried /= np.linalg.norm(carried, axis=-2, keepdims=True)
        cosines = np.abs(np.sum(carried * clv.vectors[:, i], axis=-2))
        # float64, after forward and backward transients of 30 steps at gaps
        # of ~0.5 per step (e^-15 = 3e-7 on the direction, which the window
        # then keeps): 1e-6.
        np.testing.assert_allclose(cosines, 1.0, atol=1e-6, err_msg=str(t))


def test_covariant_vectors_of_the_henon_map():
    def henon(h, x, a=1.4, b=0.3):
        return ops.stack([1.0 - a * h[:, 0] ** 2 + h[:, 1], b * h[:, 0]], axis=-1)

    h0 = np.array([[0.1, 0.1], [0.2, 0.05]])
    clv = kr.dynamics.covariant_lyapunov_vectors(
        kr.dynamics.MapCell(henon, 2), np.zeros((2, 2000, 1)), initial_state=h0,
        warmup=100, backward_warmup=100)
    # The forward iteration's exponents over 1900 steps: the attractor's
    # (0.419, -1.623) within the finite-time error (~5e-3, 0.02 ~ 4 of it).
    np.testing.assert_allclose(clv.exponents, [0.419, -1.623], atol=0.02)
    # Henon's stable and unstable directions are not orthogonal, and come
    # close to tangent (homoclinic tangencies): the smallest angle is small.
    assert np.degrees(clv.min_angle.min()) < 5.0
    assert np.degrees(np.median(clv.min_angle)) < 80.0
    # Covariance along the trajectory the result reports: J at s_{t-1}
    # carries V_{t-1} to V_t (float64; transients of 100 steps at a gap of 2).
    a, b = 1.4, 0.3
    J = np.zeros(clv.states.shape[:2] + (2, 2))
    J[..., 0, 0], J[..., 0, 1], J[..., 1, 0] = -2.0 * a * clv.states[..., 0], 1.0, b
    carried = np.einsum("bwij,bwjk->bwik", J[:, :-1], clv.vectors[:, :-1])
    carried /= np.linalg.norm(carried, axis=-2, keepdims=True)
    cosines = np.abs(np.sum(carried * clv.vectors[:, 1:], axis=-2))
    np.testing.assert_allclose(cosines, 1.0, atol=1e-9)


def test_covariant_vectors_of_a_recurrent_layer_and_their_arguments():
    layer = _wcrnn()
    x = RNG.normal(size=(2, 50, 2)).astype("float32")
    layer(x)
    clv = kr.dynamics.covariant_lyapunov_vectors(layer, x, num_vectors=3, warmup=10,
                                                 backward_warmup=15)
    assert clv.vectors.shape == (2, 25, 6, 3)
    np.testing.assert_allclose(np.linalg.norm(clv.vectors, axis=-2), 1.0, atol=1e-12)
    np.testing.assert_array_equal(clv.steps, np.arange(11, 36))
    spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=10, dtype="float64",
                                             num_exponents=3, qr_interval=1)
    # The forward pass is the QR iteration: the same exponents (float64).
    np.testing.assert_allclose(clv.exponents, spectrum.exponents, atol=1e-10)
    for kwargs, match in [({"num_vectors": 7}, "num_vectors"),
                          ({"warmup": 30, "backward_warmup": 20}, "backward_warmup"),
                          ({"backward_warmup": -1}, "backward_warmup")]:
        with pytest.raises((ValueError, TypeError), match=match):
            kr.dynamics.covariant_lyapunov_vectors(layer, x, **kwargs)


def test_the_engine_keeps_the_users_thread_settings():
    """The engine used to force one torch intra-op thread and one OpenBLAS
    thread during a spectrum; a user's settings now hold inside the loop."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads():
        return sorted({info["num_threads"] for info in threadpoolctl.threadpool_info()
                       if info.get("user_api") == "blas"})

    seen = []

    def recorder(h, x):
        state = {"blas": blas_threads()}
        if keras.backend.backend() == "torch":
            import torch

            state["torch"] = torch.get_num_threads()
        seen.append(state)
        return 0.5 * h + x

    outside = {"blas": blas_threads()}
    if keras.backend.backend() == "torch":
        import torch

        outside["torch"] = torch.get_num_threads()
    kr.dynamics.lyapunov_spectrum(kr.dynamics.MapCell(recorder, 1), np.zeros((2, 5, 1)))
    # The map runs inside the loop (at each step on torch, when the loop is
    # traced on jax and tensorflow).
    assert seen and all(state == outside for state in seen), (outside, seen)
