"""Lyapunov spectra (README.md, Equations, "Lyapunov spectrum"): known
answers, the float64 NumPy reference, options, and errors. Runs under every
backend."""

import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from tests.helpers import assert_backends_agree
from tests.helpers import float64
from tests.helpers import spans_backends

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4, 120, 3)).astype("float32")


def strong_wcrnn(units=8, residual=None, **kwargs):
    """A strongly coupled WCRNN (coupling 1, recurrent gain 1.5): the
    coupling term shapes the spectrum, far from log|eig R|."""
    layer = kr.layers.WCRNN(
        units,
        coupling=1.0,
        residual=residual or residuals.Rotational(radius=0.9, angle_range=(0.1, 1.0), seed=1),
        kernel_initializer=keras.initializers.GlorotUniform(seed=2),
        recurrent_initializer=keras.initializers.Orthogonal(gain=1.5, seed=3),
        bias_initializer=keras.initializers.RandomNormal(stddev=0.1, seed=4),
        **kwargs,
    )
    layer(X)
    return layer


# ----------------------------------------------------------- known answers


def test_weak_coupling_gives_log_radii():
    # Well separated radii: the frame aligns with the units within the warmup
    # (the finite-time bias decays as exp(-warmup * gap)).
    radii = [1.0, 0.9, 0.75, 0.6, 0.4, 0.2]
    layer = kr.layers.WCRNN(6, coupling=1e-5, residual=residuals.Heterogeneous(radii=radii))
    x = RNG.normal(size=(4, 300, 3)).astype("float32")
    layer(x)
    spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=100)
    # Coupling 1e-5 with |W| = 1 moves each exponent by <= ~1e-5 / r (<= 5e-5
    # for r = 0.2); after the warm-up the frame's misalignment decays as
    # e^(-100 * 0.1) = 5e-5 (smallest gap 0.1); float32 tangents add ~eps32
    # per step. 2e-4 bounds the sum (measured <= 3e-5 on the three backends).
    np.testing.assert_allclose(spectrum.per_sequence, np.broadcast_to(np.log(radii), (4, 6)),
                               rtol=0, atol=2e-4)
    np.testing.assert_allclose(
        spectrum.exponents, layer.cell.residual.analytic_exponents(), rtol=0, atol=2e-4
    )
    assert spectrum.jacobian == "analytic"
    assert spectrum.per_sequence.shape == (4, 6)
    assert spectrum.max == pytest.approx(0.0, abs=1e-3)


def test_strongly_coupled_wcrnn_matches_numpy_reference():
    layer = strong_wcrnn()
    reference = kr.dynamics.lyapunov_spectrum_numpy(layer, X, warmup=10)
    # Far from the weak-coupling answer, so the comparison means something.
    assert np.max(np.abs(reference.exponents - np.log(0.9))) > 0.05
    assert reference.exponents[0] > 0  # chaotic: lambda_1 ~ 0.04, up to 0.05 per sequence
    for kwargs in ({"dtype": "float64"}, {"dtype": "float64", "jacobian": "autodiff"}):
        spectrum = kr.dynamics.lyapunov_spectrum(layer, X, warmup=10, qr_interval=1, **kwargs)
        assert spectrum.dtype == "float64"
        # float64 on both sides: roundings of ~1e-16 grown by e^(lambda_1 T) ~ e^6
        # along the chaotic trajectory, over 120 steps: ~1e-11 (measured <= 4e-13).
        np.testing.assert_allclose(spectrum.per_sequence, reference.per_sequence, rtol=0,
                                   atol=1e-10, err_msg=str(kwargs))
    for kwargs in ({}, {"jacobian": "autodiff"}, {"qr_method": "cholesky"}):
        spectrum = kr.dynamics.lyapunov_spectrum(layer, X, warmup=10, qr_interval=1, **kwargs)
        # float32 steps on a chaotic net: each step's rounding (eps32 = 6e-8)
        # grows by up to e^(0.05 * 120) = 400 along the trajectory, over 120
        # steps: 6e-8 * 400 * 120 = 3e-3 at worst (measured 6e-6 to 8e-4 on
        # the three backends; the backends round differently).
        np.testing.assert_allclose(spectrum.per_sequence, reference.per_sequence, rtol=0,
                                   atol=3e-3, err_msg=str(kwargs))


@pytest.mark.parametrize("jacobian", ["auto", "autodiff"])
def test_simple_rnn_cell_matches_numpy_reference(jacobian):
    cell = keras.layers.SimpleRNNCell(
        8, recurrent_initializer=keras.initializers.Orthogonal(gain=1.3, seed=1),
        kernel_initializer=keras.initializers.GlorotUniform(seed=2),
    )
    keras.layers.RNN(cell)(X)
    spectrum = kr.dynamics.lyapunov_spectrum(cell, X, warmup=10, jacobian=jacobian, qr_interval=1)
    reference = kr.dynamics.lyapunov_spectrum_numpy(cell, X, warmup=10)
    # Keras' SimpleRNNCell has a registered tangent map: "auto" takes it.
    assert spectrum.jacobian == ("analytic" if jacobian == "auto" else "autodiff")
    assert reference.exponents[0] < 0  # contracting: roundings do not grow
    # float32 tangents and states, a relative rounding of ~eps32 = 6e-8 per
    # step and exponent on a contracting net, summed over 110 steps and
    # divided by them, with conditioning |J| |J^-1| <= ~10: ~1e-6; 1e-4
    # leaves room for the inputs' projection (measured <= 1.2e-5).
    np.testing.assert_allclose(spectrum.per_sequence, reference.per_sequence, rtol=0, atol=1e-4)
    exact = kr.dynamics.lyapunov_spectrum(cell, X, warmup=10, jacobian=jacobian, dtype="float64",
                                          qr_interval=1)
    # float64 against float64: the same sums in another order (measured <= 2e-14).
    np.testing.assert_allclose(exact.per_sequence, reference.per_sequence, rtol=0, atol=1e-10)


def _logistic(h, x):
    return 4.0 * h * (1.0 - h)


def test_logistic_map_gives_ln2():
    cell = kr.dynamics.MapCell(_logistic, state_size=1)
    h0 = np.random.default_rng(0).uniform(0.1, 0.9, size=(16, 1))
    spectrum = kr.dynamics.lyapunov_spectrum(
        cell, np.zeros((16, 2000, 1)), initial_state=h0, warmup=50, dtype="float64"
    )
    assert spectrum.num_exponents == 1
    # A finite-time estimate: the local growth rates log|4 - 8h| fluctuate
    # with std ~1 per step, so the mean over 16 x 1950 steps has a standard
    # error of ~6e-3 (more with correlations): 0.02 is about 3 of them.
    assert spectrum.exponents[0] == pytest.approx(math.log(2.0), abs=0.02)


def _henon(h, x, a=1.4, b=0.3):
    return keras.ops.stack([1.0 - a * h[:, 0] ** 2 + h[:, 1], b * h[:, 0]], axis=-1)


def test_henon_map_known_exponents():
    cell = kr.dynamics.MapCell(_henon, state_size=2)
    h0 = np.array([0.1, 0.1]) + np.random.default_rng(1).uniform(-0.05, 0.05, size=(8, 2))
    spectrum = kr.dynamics.lyapunov_spectrum(
        cell, np.zeros((8, 2000, 1)), initial_state=h0, warmup=100, dtype="float64"
    )
    # Finite-time estimates over 8 x 1900 steps of the attractor, whose local
    # rates fluctuate with std ~0.5: standard error ~4e-3, 0.02 ~ 5 of them.
    np.testing.assert_allclose(spectrum.exponents, [0.419, -1.623], atol=0.02)
    # Each step's Jacobian has determinant -b, so the sum is ln 0.3 exactly
    # up to float64 rounding (1e-16 per step, 1900 steps: ~2e-13).
    np.testing.assert_allclose(spectrum.per_sequence.sum(axis=-1), math.log(0.3), atol=1e-9)
    assert spectrum.kaplan_yorke_dimension == pytest.approx(1.258, abs=0.02)
    assert spectrum.entropy_rate == pytest.approx(spectrum.exponents[0])


# ----------------------------------------------------------- any cell


def test_lstm_gives_2n_finite_sorted_exponents_matching_numpy():
    layer = keras.layers.LSTM(
        4, kernel_initializer=keras.initializers.GlorotUniform(seed=1),
        recurrent_initializer=keras.initializers.Orthogonal(seed=2),
    )
    layer(X)
    spectrum = kr.dynamics.lyapunov_spectrum(layer, X, qr_interval=1)
    assert spectrum.exponents.shape == (8,) and spectrum.state_size == 8
    assert np.all(np.isfinite(spectrum.per_sequence))
    assert np.all(np.diff(spectrum.exponents) <= 0)
    assert np.all(np.diff(spectrum.per_sequence, axis=-1) <= 0)
    reference = kr.dynamics.lyapunov_spectrum_numpy(layer, X)
    # float32 tangents with QRs in float64 where the columns spread (auto):
    # the tail (~ -5 per step) carries the tangents' float32 rounding,
    # eps32 * |J| / R_kk ~ 6e-8 * e^1 per step, ~1e-5 over the run; 1e-4
    # leaves a factor 4 over the largest measured (2.6e-5).
    np.testing.assert_allclose(spectrum.per_sequence, reference.per_sequence, rtol=0, atol=1e-4)
    exact = kr.dynamics.lyapunov_spectrum(layer, X, dtype="float64", qr_interval=1)
    # float64 against float64 (measured <= 3e-13).
    np.testing.assert_allclose(exact.per_sequence, reference.per_sequence, rtol=0, atol=1e-10)
    # The initial [h, c] as a list equals the concatenated array.
    h0 = RNG.normal(size=(4, 4)).astype("float32") * 0.1
    c0 = RNG.normal(size=(4, 4)).astype("float32") * 0.1
    as_list = kr.dynamics.lyapunov_spectrum(layer, X[:, :30], initial_state=[h0, c0])
    as_array = kr.dynamics.lyapunov_spectrum(layer, X[:, :30], initial_state=np.concatenate([h0, c0], -1))
    # The same numbers in, the same computation: equal.
    np.testing.assert_array_equal(as_list.per_sequence, as_array.per_sequence)


@pytest.mark.parametrize("jacobian", ["auto", "autodiff"])
def test_float64_mode_makes_every_cell_of_a_stack_float64(jacobian):
    """dtype="float64" copies a stack's sub-cells to float64 too: the result
    equals the spectrum of a stack built in float64 with the same weights
    (the copy used to keep the sub-cells in float32: torch failed, "expected
    scalar type Double but found Float", and autodiff gave a "float64"
    result 1e-5 to 3e-4 off)."""
    def stack(dtype):
        return keras.layers.RNN(
            [keras.layers.SimpleRNNCell(4, dtype=dtype), keras.layers.LSTMCell(3, dtype=dtype)],
            dtype=dtype,
        )

    mixed = stack(None)
    mixed(X[:, :2])
    spectrum = kr.dynamics.lyapunov_spectrum(mixed, X[:, :60], dtype="float64", jacobian=jacobian)
    with float64():
        exact = stack("float64")
        exact.build((None, None, X.shape[-1]))
        exact.set_weights([w.astype("float64") for w in mixed.get_weights()])
    reference = kr.dynamics.lyapunov_spectrum(exact, X[:, :60], dtype="float64", jacobian=jacobian)
    assert spectrum.dtype == "float64" and spectrum.jacobian == reference.jacobian
    # The same float64 computation on the same float64 weights: equal up to
    # the order of float64 sums (measured 0).
    np.testing.assert_allclose(spectrum.per_sequence, reference.per_sequence, rtol=0, atol=1e-12)


def test_top_k_equals_first_k_of_full_spectrum():
    layer = strong_wcrnn()
    full = kr.dynamics.lyapunov_spectrum(layer, X, qr_interval=1)
    top = kr.dynamics.lyapunov_spectrum(layer, X, num_exponents=3, qr_interval=1)
    assert top.exponents.shape == (3,)
    # A QR's first k columns depend on Z's first k columns alone: the same
    # float32 arithmetic, but batched LAPACK blocks k and S columns
    # differently (measured <= 1.4e-8 in exponents of O(0.1)).
    np.testing.assert_allclose(top.exponents, full.exponents[:3], rtol=0, atol=1e-6)


def test_qr_interval_agrees_on_a_contracting_system():
    layer = kr.layers.WCRNN(
        8, coupling=0.3, residual=residuals.Heterogeneous(radius_range=(0.6, 0.95), seed=5),
        recurrent_initializer=keras.initializers.Orthogonal(seed=6),
    )
    layer(X)
    every = kr.dynamics.lyapunov_spectrum(layer, X, warmup=7, qr_interval=1)
    assert every.num_qr == X.shape[1]
    assert np.all(every.exponents < 0)
    for interval in (5, "auto"):
        sparse = kr.dynamics.lyapunov_spectrum(layer, X, warmup=7, qr_interval=interval)
        assert sparse.num_qr < X.shape[1] // 3
        # Exact in exact arithmetic. Between QRs the columns spread by at most
        # e^(0.8 * 5) (exponents >= -0.8): each QR's float32 relative error on
        # log R_kk is ~eps32 * e^4 = 3e-6, 24 QRs averaged over 113 steps:
        # ~7e-7 (measured <= 9e-8).
        np.testing.assert_allclose(sparse.exponents, every.exponents, rtol=0, atol=2e-6,
                                   err_msg=str(interval))


def test_auto_interval_keeps_the_tail_after_a_uniform_first_step():
    # An orthogonal recurrent matrix and h_0 = 0: the first step's Jacobian
    # has (nearly) equal singular values, so the spread measured at the first
    # QR is ~0. The schedule once took that rate at its word and skipped ~50
    # steps, by which time the columns had grown apart by e^60 and the tail
    # exponents came out at -0.84 instead of -1.25. Intervals now at most
    # double. Tolerance: float32 tangents, QRs with columns at most e^6 apart:
    # ~eps32 * e^6 = 2.4e-5 per QR; 2e-4 leaves a factor 8 for the
    # accumulation over 60 steps.
    x = RNG.normal(size=(3, 60, 1)).astype("float32")
    layer = keras.layers.SimpleRNN(
        16, kernel_initializer=keras.initializers.GlorotUniform(seed=3),
        recurrent_initializer=keras.initializers.Orthogonal(gain=1.5, seed=2),
    )
    layer(x[:, :2])
    every = kr.dynamics.lyapunov_spectrum(layer, x, qr_interval=1)
    auto = kr.dynamics.lyapunov_spectrum(layer, x, qr_interval="auto")
    assert auto.num_qr < every.num_qr
    np.testing.assert_allclose(auto.exponents, every.exponents, atol=2e-4)


def test_cholesky_qr_falls_back_on_an_ill_conditioned_lstm():
    layer = keras.layers.LSTM(4, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
    layer(X)
    householder = kr.dynamics.lyapunov_spectrum(layer, X, qr_method="householder")
    cholesky = kr.dynamics.lyapunov_spectrum(layer, X, qr_method="cholesky")
    assert cholesky.qr_method == "cholesky"
    # CholeskyQR2's float32 error grows as eps32 * cond(Z)^2; the tail (about
    # -4 per step, e^3 below the head within a step) gives 6e-8 * e^6 = 2.4e-5
    # (measured <= 2.4e-5): 1e-4. The head exponents are well conditioned:
    # eps32-level (measured <= 4e-8), 1e-6.
    np.testing.assert_allclose(cholesky.exponents, householder.exponents, rtol=0, atol=1e-4)
    np.testing.assert_allclose(cholesky.exponents[:4], householder.exponents[:4], rtol=0, atol=1e-6)


def test_go_backwards_layer_reverses_time():
    layer = strong_wcrnn(go_backwards=True)
    of_layer = kr.dynamics.lyapunov_spectrum(layer, X[:, :40])
    of_cell = kr.dynamics.lyapunov_spectrum(layer.cell, X[:, :40][:, ::-1])
    # The same inputs in the same order through the same computation: equal.
    np.testing.assert_array_equal(of_layer.per_sequence, of_cell.per_sequence)


@pytest.mark.parametrize("qr_interval", [1, 3, "auto"])
@pytest.mark.parametrize("kind", ["wcrnn", "lstm"])
def test_progress_bar_gives_the_same_numbers(capsys, kind, qr_interval):
    # The progress bar runs the loop in chunks; every step computes exactly
    # what it computes in one run (nothing is formed over a whole chunk, such
    # as an input projection, whose GEMM would round by the chunk's size), so
    # the numbers must be equal bit for bit, not merely close.
    if kind == "wcrnn":
        layer = strong_wcrnn()
    else:
        layer = keras.layers.LSTM(6)
        layer(X[:, :5])
    plain = kr.dynamics.lyapunov_spectrum(layer, X[:, :50], qr_interval=qr_interval)
    shown = kr.dynamics.lyapunov_spectrum(layer, X[:, :50], qr_interval=qr_interval, progress=True)
    np.testing.assert_array_equal(shown.per_sequence, plain.per_sequence)
    assert shown.num_qr == plain.num_qr
    assert "50/50" in capsys.readouterr().out


def test_super_critical_overflow_gives_non_finite_exponents_and_a_warning():
    layer = kr.layers.WCRNN(4, coupling=0.1, residual=residuals.Homogeneous(radius=3.0))
    x = np.ones((2, 200, 1), dtype="float32")
    layer(x)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        spectrum = kr.dynamics.lyapunov_spectrum(layer, x)
    assert not spectrum.is_finite
    assert not np.isfinite(spectrum.max)


@pytest.mark.parametrize("make", ["wcrnn", "lstm"])
def test_nan_inputs_give_nan_exponents_for_that_sequence_only(make):
    layer = strong_wcrnn() if make == "wcrnn" else keras.layers.LSTM(3)
    layer(X[:, :2])
    x = X[:, :40].copy()
    x[1, 5, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="1 of 4 trajectories gave non-finite"):
        spectrum = kr.dynamics.lyapunov_spectrum(layer, x)
    assert np.isnan(spectrum.per_sequence[1]).all()
    assert np.isfinite(np.delete(spectrum.per_sequence, 1, axis=0)).all()


def test_integer_inputs_are_cast_to_the_computation_dtype():
    layer = strong_wcrnn()
    x = np.random.default_rng(0).integers(-2, 3, size=(2, 30, 3))
    as_ints = kr.dynamics.lyapunov_spectrum(layer, x.astype("int32"))
    as_floats = kr.dynamics.lyapunov_spectrum(layer, x.astype("float32"))
    np.testing.assert_array_equal(as_ints.per_sequence, as_floats.per_sequence)


def test_result_figures():
    assert kr.dynamics.kaplan_yorke_dimension([0.419, -1.623]) == pytest.approx(1 + 0.419 / 1.623)
    assert kr.dynamics.kaplan_yorke_dimension([-0.1, -0.5]) == 0.0
    assert kr.dynamics.kaplan_yorke_dimension([0.2, 0.1]) == 2.0
    assert kr.dynamics.kaplan_yorke_dimension([0.5, -0.2, -1.0]) == pytest.approx(2.3)
    assert math.isnan(kr.dynamics.kaplan_yorke_dimension([0.1, float("nan")]))
    with pytest.raises(TypeError, match="`exponents` must be numeric"):
        kr.dynamics.kaplan_yorke_dimension(["0.1"])
    with pytest.raises(ValueError, match="`exponents` must not be empty"):
        kr.dynamics.kaplan_yorke_dimension([])
    layer = strong_wcrnn()
    spectrum = kr.dynamics.lyapunov_spectrum(layer, X[:, :30], seed=3)
    assert spectrum.seed == 3 and spectrum.steps == 30 and spectrum.backend == keras.backend.backend()
    assert spectrum.mean == pytest.approx(np.mean(spectrum.exponents))
    assert "LyapunovSpectrum(k=8" in repr(spectrum)


# ----------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"num_exponents": 9}, ValueError, ["num_exponents", "9", "[1, state size = 8]"]),
        ({"num_exponents": 0}, ValueError, ["num_exponents", "0"]),
        ({"num_exponents": 2.5}, TypeError, ["num_exponents", "2.5"]),
        ({"warmup": 120}, ValueError, ["warmup", "120", "timesteps - 1 = 119"]),
        ({"warmup": -1}, ValueError, ["warmup", "-1"]),
        ({"qr_interval": 0}, ValueError, ["qr_interval", "0"]),
        ({"qr_interval": "sometimes"}, TypeError, ["qr_interval", "sometimes"]),
        ({"dtype": "float16"}, ValueError, ["dtype", "float16", "float64"]),
        ({"jacobian": "numeric"}, ValueError, ["jacobian", "numeric", "autodiff"]),
        ({"qr_method": "givens"}, ValueError, ["qr_method", "givens", "householder"]),
        ({"seed": -3}, ValueError, ["seed", "-3"]),
        ({"initial_state": np.zeros((4, 5))}, ValueError, ["initial_state", "(4, 8)", "(4, 5)"]),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, error, words):
    layer = strong_wcrnn()
    with pytest.raises(error) as info:
        kr.dynamics.lyapunov_spectrum(layer, X, **kwargs)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_invalid_inputs_and_layers_raise_clear_errors():
    layer = strong_wcrnn()
    with pytest.raises(ValueError, match=r"`inputs` must have rank 3.*\(4, 120\)"):
        kr.dynamics.lyapunov_spectrum(layer, X[..., 0])
    with pytest.raises(ValueError, match="could not be called"):
        kr.dynamics.lyapunov_spectrum(layer, np.zeros((2, 10, 5), "float32"))
    with pytest.raises(TypeError, match="`cell_or_layer`.*Dense"):
        kr.dynamics.lyapunov_spectrum(keras.layers.Dense(3), X)
    model = keras.Sequential([keras.Input((120, 3)), keras.layers.Dense(2)])
    with pytest.raises(TypeError, match="model"):
        kr.dynamics.lyapunov_spectrum(model, X)
    # A cell without a tangent map (an activation with no known derivative).
    lstm = keras.layers.LSTM(3, activation="softsign")
    lstm(X)
    with pytest.raises(ValueError, match="`jacobian` is 'analytic'.*LSTMCell.*no tangent map"):
        kr.dynamics.lyapunov_spectrum(lstm, X, jacobian="analytic")
    with pytest.raises(TypeError, match="callable"):
        kr.dynamics.MapCell(3, state_size=2)
    with pytest.raises(ValueError, match="state_size"):
        kr.dynamics.MapCell(_logistic, state_size=0)


# ----------------------------------------------------------- frequency, plots


def test_characteristic_frequency():
    t = np.arange(784)
    phases = np.random.default_rng(0).uniform(0, 2 * np.pi, size=(16, 1))
    x = np.sin(2 * np.pi * t / 28 + phases) + 0.3 * np.random.default_rng(1).normal(size=(16, 784))
    assert kr.dynamics.characteristic_frequency(x) == pytest.approx(2 * np.pi / 28)
    angle, angles, power = kr.dynamics.characteristic_frequency(x[..., None] + 5.0, return_spectrum=True)
    assert angle == pytest.approx(2 * np.pi / 28)  # the DC offset is excluded
    assert angles.shape == power.shape == (392,)
    with pytest.raises(ValueError, match="rank"):
        kr.dynamics.characteristic_frequency(np.zeros(10))
    with pytest.raises(ValueError, match="finite"):
        kr.dynamics.characteristic_frequency(np.full((2, 10), np.nan))
    # A constant signal has no frequency (it used to return 2 pi / T).
    for constant in (np.zeros((3, 50)), np.full((3, 50, 2), 7.5)):
        with pytest.raises(ValueError, match="no power outside the constant"):
            kr.dynamics.characteristic_frequency(constant)
    with pytest.raises(ValueError, match="`x` must have rank 2 or 3"):
        kr.dynamics.characteristic_frequency("not data")
    pixels = (np.sin(2 * np.pi * t / 28)[None] > 0).astype("uint8")  # integer data
    assert kr.dynamics.characteristic_frequency(pixels) == pytest.approx(2 * np.pi / 28)


def test_plot_spectra(tmp_path, monkeypatch):
    import matplotlib  # noqa: F401  (the `test` extra installs it)
    spectra = np.array([[0.1, -0.2, -0.5], [0.05, -0.25, -0.6]])
    path = tmp_path / "spectra.png"
    figure = kr.dynamics.plot_spectra(spectra, path=str(path), title="test")
    assert path.stat().st_size > 1000
    assert len(figure.axes[0].lines) == 3 + 1  # exponents and the zero line
    with pytest.raises(ValueError, match="epochs, k"):
        kr.dynamics.plot_spectra(np.zeros((2, 2, 2)))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        kr.dynamics.plot_spectra(spectra)


# ----------------------------------------------------------- across backends

CROSS_BACKEND = """
import keras_residual as kr

class Spectrum(keras.layers.Layer):
    def __init__(self, layer):
        super().__init__()
        self.rnn = layer

    def build(self, shape):
        self.rnn.build(shape)

    def call(self, x):
        # A QR every step: the same schedule on every backend (see the test).
        spectrum = kr.dynamics.lyapunov_spectrum(self.rnn, x, warmup=5, qr_interval=1)
        return keras.ops.convert_to_tensor(spectrum.per_sequence.astype("float32"))

def make():
    return {
        "wcrnn": Spectrum(kr.layers.WCRNN(6, coupling=0.8,
            residual=kr.residuals.Rotational(radius=0.95, angle_range=(0.1, 1.0)))),
        "gru": Spectrum(keras.layers.GRU(4)),
    }
"""


@spans_backends
def test_spectra_agree_across_backends():
    # float32 on each backend, whose roundings differ (eps32 = 6e-8 per op):
    # over 60 steps of nets near criticality (the roundings neither grow nor
    # fade much), ~60 * a few eps32 * conditioning ~1e-5; 1e-4 leaves room
    # for the GRU's sigmoid gates, whose kernels differ most across backends.
    # On one QR schedule: qr_interval="auto" picks each interval (and a QR's
    # precision) from rates measured in float32, so backends may pick different
    # schedules, whose results differ by auto's own float32 accuracy (float32
    # QRs at spreads up to e^6 lose ~n eps e^6 on the smallest R_jj; see
    # `loop.AUTO_LIMITS`). Measured over 25 random 4-unit GRUs, 55 steps: up to
    # 4e-4 across backends under "auto", 3.2e-6 with a QR every step; one such
    # draw failed this test in CI at 1.08e-4.
    assert_backends_agree(CROSS_BACKEND, X[:2, :60], atol=1e-4)


@pytest.mark.only_backend("tensorflow", reason="AutoGraph is TensorFlow's")
def test_the_first_spectrum_on_tensorflow_logs_no_autograph_warning():
    """The loop resolved the engine's backend module through `importlib`
    while TensorFlow traced it, and AutoGraph logged "could not transform
    <function _gcd_import>" at a new user's first call. In a fresh process,
    since AutoGraph reports each function once."""
    code = (
        "import numpy as np, keras, keras_residual as kr\n"
        "x = np.random.default_rng(0).normal(size=(2, 12, 3)).astype('float32')\n"
        "rnn = keras.layers.SimpleRNN(4)\n"
        "rnn(x)\n"
        "s = kr.dynamics.lyapunov_spectrum(rnn, x, warmup=2, history=5)\n"
        "print(np.isfinite(s.exponents).all())\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"
    assert "AutoGraph could not transform" not in out.stderr, out.stderr[-2000:]
