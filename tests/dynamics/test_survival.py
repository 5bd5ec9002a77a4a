"""ReLU survival and Cantelli bounds (README.md, Equations, "PNNH": ReLU survival)."""

import keras
import numpy as np
import pytest

import keras_residual as kr


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _dense_model():
    inputs = keras.Input((5,))
    h = keras.layers.Dense(7, activation="relu", name="dense_relu")(inputs)
    h = keras.layers.Dense(6, name="dense_linear")(h)
    h = keras.layers.ReLU(threshold=0.1, name="relu_layer")(h)
    h = keras.layers.Dense(4, name="dense_out")(h)
    outputs = keras.layers.Activation("relu", name="activation_relu")(h)
    return keras.Model(inputs, outputs)


def _numpy_pre_activations(model, x):
    (w1, b1), (w2, b2), (w3, b3) = (
        model.get_layer(n).get_weights() for n in ("dense_relu", "dense_linear", "dense_out")
    )
    z1 = x @ w1 + b1
    z2 = np.maximum(z1, 0) @ w2 + b2
    h2 = np.where(z2 > 0.1, z2, 0.0)
    z3 = h2 @ w3 + b3
    return {"dense_relu": z1, "relu_layer": z2 - 0.1, "activation_relu": z3}


def test_survival_matches_numpy_on_a_dense_model():
    model = _dense_model()
    x = np.random.default_rng(0).standard_normal((64, 5)).astype("float32")
    rates = kr.dynamics.relu_survival(model, x)
    expected = _numpy_pre_activations(model, x)
    assert list(rates) == list(expected)  # every ReLU, in depth order
    for name, z in expected.items():
        assert rates[name] == pytest.approx(np.mean(z > 0), abs=1e-6), name
        assert 0.05 < rates[name] < 0.95  # non-trivial, so the check can fail
    bounds = kr.dynamics.survival_bounds(model, x)
    for name, z in expected.items():
        s = bounds[name]
        assert s["mean"] == pytest.approx(z.mean(), abs=1e-5)
        assert s["variance"] == pytest.approx(z.var(), rel=1e-4)
        assert s["cantelli_bound"] == pytest.approx(
            kr.dynamics.cantelli_lower_bound(z.mean(), z.var()), rel=1e-3, abs=1e-6
        )
        assert s["cantelli_bound"] <= s["survival"] + 1e-7
    # A second call works too: probing adds no node to the model's layers.
    assert kr.dynamics.relu_survival(model, x) == rates


def test_cantelli_values():
    cantelli = kr.dynamics.cantelli_lower_bound
    assert cantelli(1.0, 3.0) == pytest.approx(0.25)
    assert cantelli(2.0, 1.0) == pytest.approx(0.8)
    assert cantelli(0.5, 0.0) == 1.0
    assert cantelli(0.0, 1.0) == 0.0
    assert cantelli(-1.0, 0.0) == 0.0
    np.testing.assert_allclose(cantelli([1.0, -1.0, 3.0], [1.0, 1.0, 1.0]), [0.5, 0.0, 0.9])
    # The bound holds for a distribution: a shifted normal, mu = 1, s = 1.
    z = np.random.default_rng(0).standard_normal(100_000) + 1.0
    assert np.mean(z > 0) >= cantelli(z.mean(), z.var())
    for bad in (-1.0, float("inf")):
        with pytest.raises(ValueError, match="variance"):
            cantelli(1.0, bad)
    # NaN stays NaN: no bound can be read off a NaN figure.
    assert np.isnan(cantelli(float("nan"), 1.0)) and np.isnan(cantelli(1.0, float("nan")))
    np.testing.assert_array_equal(np.isnan(cantelli([1.0, np.nan], [1.0, 1.0])), [False, True])


def test_nan_pre_activations_give_nan_survival_with_a_warning():
    model = _dense_model()
    x = np.random.default_rng(1).standard_normal((16, 5)).astype("float32")
    x[3, 0] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):
        rates = kr.dynamics.relu_survival(model, x)
    # The NaN reaches the first two ReLUs' pre-activations; Keras' ReLU layer
    # with a threshold maps NaN to 0 (where(z > 0.1, z, 0)), so the last
    # ReLU's pre-activation is finite and its rate is a real rate.
    assert np.isnan(rates["dense_relu"]) and np.isnan(rates["relu_layer"]), rates
    assert 0.0 <= rates["activation_relu"] <= 1.0
    with pytest.warns(RuntimeWarning, match="NaN"):
        stats = kr.dynamics.survival_bounds(model, x)
    for key in ("dense_relu", "relu_layer"):
        assert np.isnan(stats[key]["survival"]) and np.isnan(stats[key]["cantelli_bound"])


def test_a_model_without_relu_and_an_empty_probe_are_clear_errors():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, activation="tanh")])
    x = np.zeros((4, 5), "float32")
    with pytest.raises(ValueError, match="no ReLU"):
        kr.dynamics.relu_survival(model, x)
    with pytest.raises(ValueError, match="no ReLU"):
        kr.dynamics.survival_bounds(keras.layers.Dense(3), x)
    with pytest.raises(ValueError, match=r"`inputs` must not be empty.*\(0, 5\)"):
        kr.dynamics.relu_survival(_dense_model(), np.zeros((0, 5), "float32"))


def test_integer_probes_are_measured_as_floats():
    model = _dense_model()
    x = np.random.default_rng(4).integers(-3, 4, size=(16, 5))
    expected = kr.dynamics.relu_survival(model, x.astype("float32"))
    assert kr.dynamics.relu_survival(model, x.astype("int32")) == pytest.approx(expected)


def test_selection_nesting_and_single_layers():
    model = _dense_model()
    x = np.random.default_rng(1).standard_normal((16, 5)).astype("float32")
    assert list(kr.dynamics.relu_survival(model, x, layers=["relu_layer"])) == ["relu_layer"]
    assert list(kr.dynamics.relu_survival(model, x, layers=model.get_layer("dense_relu"))) == [
        "dense_relu"
    ]
    with pytest.raises(ValueError, match="'nope'.*allowed"):
        kr.dynamics.relu_survival(model, x, layers=["nope"])

    inputs = keras.Input((5,))
    top = keras.layers.Dense(3, activation="relu", name="top")
    outer = keras.Model(inputs, top(model(inputs)))
    nested = kr.dynamics.relu_survival(outer, x)
    inner = kr.dynamics.relu_survival(model, x)
    assert list(nested) == [f"{model.name}/{k}" for k in inner] + ["top"]
    for k, v in inner.items():
        assert nested[f"{model.name}/{k}"] == pytest.approx(v)

    block = kr.layers.ResidualConvBlock(4)
    images = np.random.default_rng(2).random((2, 4, 4, 4)).astype("float32")
    rates = kr.dynamics.relu_survival(block, images)
    assert list(rates) == [f"{block.name}/learner_relu_1", f"{block.name}/output_relu"]
    z = _np(block.relu_pre_activations(images)["output_relu"])
    assert rates[f"{block.name}/output_relu"] == pytest.approx(np.mean(z > 0))


def test_subclassed_models_are_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3, activation="relu")

        def call(self, x):
            return self.dense(x)

    net = Net()
    with pytest.raises(TypeError, match="subclassed"):
        kr.dynamics.relu_survival(net, np.zeros((2, 4), "float32"))
    with pytest.raises(TypeError, match="model"):
        kr.dynamics.relu_survival("model", np.zeros((2, 4), "float32"))


DEPTH, WIDTH = 30, 16


def _stack(kind, coder=None):
    inputs = keras.Input((8, 8, WIDTH))
    y = inputs
    for _ in range(DEPTH):
        if kind == "plain":
            block = kr.layers.PlainConvBlock(WIDTH)
        elif kind == "residual":
            block = kr.layers.ResidualConvBlock(WIDTH)
        else:
            block = kr.layers.PNNHConvBlock(WIDTH, coder=coder)
        y = block(y)
    return keras.Model(inputs, y)


def _output_survival(model, x, bounds=None):
    stats = kr.dynamics.survival_bounds(model, x)
    out = [v for k, v in stats.items() if k.endswith("/output_relu")]
    assert len(out) == DEPTH
    if bounds is not None:
        bounds.append(np.mean([v["cantelli_bound"] for v in out]))
    return np.mean([v["survival"] for v in out])


def test_survival_at_depth_pnnh_and_residual_above_plain():
    """The paper's mechanism, measured: 30 He-normal blocks, inference mode.

    Mean survival of the 30 blocks' output ReLUs on 16 images of
    relu(N(0, 1)), 8x8x16 (fresh batch normalization is the identity at
    inference). Measured over 20 seeds on the three backends:

        plain                                   0.48-0.52  (mean 0.50)
        residual                                0.64-0.70  (mean 0.67)
        PNNH, shared coder pre-trained on
          relu(N(0, 1)) (200 steps)             0.57-0.68  (mean 0.63)
        PNNH, shared randomly initialised coder 0.43-0.59  (mean 0.51)

    Mean Cantelli bounds of the same pre-activations: plain 0.01, residual
    0.14-0.21, pre-trained PNNH 0.12.

    So the ordering "PNNH and residual well above plain" holds for a
    pre-trained coder, which carries its input's positive mean into the
    pre-activation as the identity shortcut does. A random coder's output
    has zero mean over its random weights: its stack scatters around the
    plain one (a shared coder's random channel means push all 30 blocks the
    same way, hence the spread), and is not reliably above it.
    """
    x = np.random.default_rng(0).standard_normal((16, 8, 8, WIDTH))
    x = np.maximum(x, 0).astype("float32")
    bounds = []
    plain = _output_survival(_stack("plain"), x, bounds)
    residual = _output_survival(_stack("residual"), x, bounds)
    pretrained = kr.layers.PNNHCoder(WIDTH)
    pretrained.pretrain(steps=200, batch_size=256, learning_rate=1e-2, seed=0)
    pnnh = _output_survival(_stack("pnnh", pretrained), x, bounds)
    pnnh_random = _output_survival(_stack("pnnh", kr.layers.PNNHCoder(WIDTH)), x)
    summary = (
        f"plain={plain:.3f} residual={residual:.3f} pnnh={pnnh:.3f} "
        f"pnnh_random={pnnh_random:.3f}; Cantelli bounds (plain, residual, pnnh) "
        f"{[round(float(b), 3) for b in bounds]}"
    )
    assert 0.45 < plain < 0.55, summary
    assert residual > plain + 0.1, summary
    assert pnnh > plain + 0.05, summary
    assert abs(pnnh_random - plain) < 0.12, summary
    # The theory's side: the positive mean raises the Cantelli bound.
    assert bounds[1] > bounds[0] + 0.05 and bounds[2] > bounds[0] + 0.02, summary


def test_plot_survival():
    import matplotlib

    matplotlib.use("Agg")
    rates = {0: {"a": 0.5, "b": 0.4}, 1: {"a": 0.6, "b": 0.55}}
    ax = kr.dynamics.plot_survival(rates)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.6, 0.55])
    ax = kr.dynamics.plot_survival(rates[0], keys=["b"])
    assert list(ax.lines[0].get_ydata()) == [0.4]
    with pytest.raises(ValueError, match="empty"):
        kr.dynamics.plot_survival({})
