import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import residuals
from tests.helpers import assert_backends_agree
from tests.helpers import spans_backends
from tests.helpers import check_layer
from tests.helpers import gradients

UNITS = 6
RNG = np.random.default_rng(1)
X = RNG.normal(size=(3, 15, 2)).astype("float32")

# Tolerances. Outputs: float32 (eps 6e-8) x 15 steps x a per-step error gain
# <= ~3 (|W| ~ 1, coupling 0.4, residual <= 1) on states of magnitude <= 1
# gives ~3e-6; 1e-5 leaves 3x. Gradients: summed over 15 steps x 3 sequences
# of such errors, relative to entries up to ~10: 1e-4 absolute and relative.
OUT_ATOL = 1e-5
GRAD_TOL = dict(atol=1e-4, rtol=1e-4)
# Across backends, 30 steps: eps 6e-8 x 3.3 x 30 steps x 3 (gain) = 1.8e-5.
CROSS_BACKEND_ATOL = 2e-5

RESIDUALS = {
    "none": lambda: None,
    "identity": lambda: "identity",
    "homogeneous": lambda: residuals.Homogeneous(0.9),
    "heterogeneous": lambda: residuals.Heterogeneous(radius_range=(0.5, 1.0), seed=1),
    "rotational": lambda: residuals.Rotational(radius=0.95, angle_range=(0.1, 1.0), seed=3),
    "dense": lambda: residuals.Dense("orthogonal", scale=0.9, seed=4),
    "nonlinear": lambda: residuals.Nonlinear(residuals.Homogeneous(0.9)),
}


def pair(residual, activation="tanh", coupling=0.4, **rnn_kwargs):
    """A fused WCRNN and the generic RNN(WCRNNCell) with the same weights."""
    fused = kr.layers.WCRNN(UNITS, coupling=coupling, residual=residual, activation=activation,
                            bias_initializer="random_normal", **rnn_kwargs)
    fused(X)
    generic = keras.layers.RNN(
        kr.layers.WCRNNCell(UNITS, coupling=coupling, residual=residual, activation=activation),
        **rnn_kwargs,
    )
    generic(X)
    generic.set_weights(fused.get_weights())
    return fused, generic


def numpy_outputs(layer, x):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(layer(x))]


@pytest.mark.parametrize("name", sorted(RESIDUALS))
@pytest.mark.parametrize(
    "options",
    [
        {"return_sequences": True},
        {"return_sequences": False, "return_state": True},
        {"return_sequences": True, "go_backwards": True},
    ],
    ids=["sequences", "state", "backwards"],
)
def test_fused_equals_generic_outputs_and_gradients(name, options):
    fused, generic = pair(RESIDUALS[name](), **options)
    for a, b in zip(numpy_outputs(fused, X), numpy_outputs(generic, X)):
        np.testing.assert_allclose(a, b, atol=OUT_ATOL)
    for a, b in zip(gradients(fused, X), gradients(generic, X)):
        np.testing.assert_allclose(a, b, **GRAD_TOL)


@pytest.mark.parametrize("name", sorted(RESIDUALS))
@pytest.mark.parametrize(
    "options",
    [{"return_sequences": True}, {"return_sequences": False},
     {"return_sequences": False, "go_backwards": True}],
    ids=["sequences", "last", "backwards"],
)
def test_fused_inference_equals_generic(name, options, monkeypatch):
    """`predict` (no gradient recorded: torch's kernel takes its lean
    in-place path, projecting a few steps at a time, here 4 of the 15) against
    the generic RNN, with a given initial state, which the kernel must read
    and never write."""
    if keras.backend.backend() == "torch":
        from keras_residual.layers._wcrnn_kernels import torch as torch_kernel

        monkeypatch.setattr(torch_kernel, "_CHUNK", 4)
    fused, generic = pair(RESIDUALS[name](), **options)
    h0 = RNG.normal(size=(3, UNITS)).astype("float32")
    kept = h0.copy()

    def predict(rnn):
        x, s = keras.Input(X.shape[1:]), keras.Input((UNITS,))
        return keras.Model([x, s], rnn(x, initial_state=[s])).predict_on_batch([X, h0])

    np.testing.assert_allclose(predict(fused), predict(generic), atol=OUT_ATOL)
    np.testing.assert_array_equal(h0, kept)


@pytest.mark.only_backend("tensorflow", reason="TensorFlow's inference loop and tape check")
@pytest.mark.parametrize("return_sequences", [True, False])
def test_tensorflow_inference_keeps_nothing_and_a_later_gradient_still_matches(return_sequences):
    """Where no tape records a call (predict), the TensorFlow kernel runs its
    inference loop, not the forward loop that keeps every state and
    activation; a tf.function traced so and differentiated later (called
    under a tape) gets its gradient by running the forward loop then, equal
    to the generic RNN's (differentiating the inference loop itself fails
    in XLA: 'TensorList crossing the XLA/TF boundary')."""
    import tensorflow as tf

    from keras_residual.layers._wcrnn_kernels import tensorflow as tf_kernel

    # A coupling no other test uses: loops this test alone has compiled.
    fused, generic = pair(residuals.Rotational(radius=0.9, angle=0.4), coupling=0.37,
                          return_sequences=return_sequences)
    form = fused.cell.residual.form("float32")
    x = tf.constant(X)
    traced_outside_any_tape = tf.function(lambda x: fused(x))
    np.testing.assert_allclose(traced_outside_any_tape(x), generic(x), atol=OUT_ATOL)
    key = (0.37, fused.cell.activation, tf_kernel._activations.derivative(fused.cell.activation),
           form.key, True, return_sequences)
    forward, _, inference = tf_kernel._COMPILED[key]
    assert forward.experimental_get_tracing_count() == 0
    assert inference.experimental_get_tracing_count() >= 1

    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(traced_outside_any_tape(x)))
    late = tape.gradient(loss, fused.trainable_variables)
    assert forward.experimental_get_tracing_count() == 1  # traced for the gradient
    for a, b in zip(late, gradients(generic, X)):
        np.testing.assert_allclose(a, b, **GRAD_TOL)


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "linear"])
def test_fused_equals_generic_for_other_activations(activation):
    fused, generic = pair(residuals.Rotational(radius=0.9, angle=0.5), activation=activation,
                          return_sequences=True)
    assert fused.uses_fused_kernel()
    np.testing.assert_allclose(numpy_outputs(fused, X)[0], numpy_outputs(generic, X)[0], atol=OUT_ATOL)
    for a, b in zip(gradients(fused, X), gradients(generic, X)):
        np.testing.assert_allclose(a, b, **GRAD_TOL)


@pytest.mark.parametrize("features", [2, 4])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_fused_input_gradient_reaches_the_layers_before_it(use_bias, return_sequences, features):
    """The fused kernels form the input projection themselves (per step in
    the TensorFlow loop; in the JAX scan per step for 2 features and before
    it for 4, see `projects_per_step`): its gradient must reach the kernel,
    the bias and, through the inputs, a Dense layer before the WCRNN."""

    def model(rnn):
        net = keras.Sequential([keras.Input(X.shape[1:]), keras.layers.Dense(features), rnn])
        return net

    residual = residuals.Rotational(radius=0.95, angle=0.4)
    fused = model(kr.layers.WCRNN(UNITS, coupling=0.4, residual=residual, use_bias=use_bias,
                                  bias_initializer="random_normal",
                                  return_sequences=return_sequences))
    generic = model(keras.layers.RNN(
        kr.layers.WCRNNCell(UNITS, coupling=0.4, residual=residual, use_bias=use_bias),
        return_sequences=return_sequences))
    generic.set_weights(fused.get_weights())
    assert fused.layers[-1].uses_fused_kernel()
    np.testing.assert_allclose(numpy_outputs(fused, X)[0], numpy_outputs(generic, X)[0], atol=OUT_ATOL)
    grads = gradients(fused, X)
    assert len(grads) == (5 if use_bias else 4)
    for a, b in zip(grads, gradients(generic, X)):
        np.testing.assert_allclose(a, b, **GRAD_TOL)
    assert np.abs(grads[0]).max() > 0  # the Dense kernel, reached through dL/dx


def test_trainable_residual_gets_gradients():
    layer = kr.layers.WCRNN(UNITS, residual=residuals.Heterogeneous(seed=0), residual_trainable=True)
    layer(X)
    reference = keras.layers.RNN(
        kr.layers.WCRNNCell(UNITS, residual=residuals.Heterogeneous(seed=0), residual_trainable=True)
    )
    reference(X)
    reference.set_weights(layer.get_weights())
    names = [v.name for v in layer.trainable_variables]
    assert "residual_radii" in names
    grads = gradients(layer, X)
    for a, b in zip(grads, gradients(reference, X)):
        np.testing.assert_allclose(a, b, **GRAD_TOL)
    assert np.abs(grads[names.index("residual_radii")]).max() > 0


def test_fused_kernel_is_used_and_fallbacks_are_documented_cases():
    layer = kr.layers.WCRNN(UNITS, residual=residuals.Rotational(angle=0.3))
    assert layer.uses_fused_kernel()
    assert layer.uses_fused_kernel(training=True)
    assert not layer.uses_fused_kernel(mask=np.ones((3, 15), bool))
    assert not kr.layers.WCRNN(UNITS, unroll=True).uses_fused_kernel()
    rec = kr.layers.WCRNN(UNITS, recurrent_dropout=0.2)
    assert rec.uses_fused_kernel(training=False) and not rec.uses_fused_kernel(training=True)


def test_unroll_and_stateful():
    fused, generic = pair("identity", return_sequences=True)
    unrolled = kr.layers.WCRNN(UNITS, coupling=0.4, return_sequences=True, unroll=True)
    unrolled(X)
    unrolled.set_weights(fused.get_weights())
    np.testing.assert_allclose(numpy_outputs(unrolled, X)[0], numpy_outputs(fused, X)[0], atol=OUT_ATOL)

    stateful = kr.layers.WCRNN(UNITS, coupling=0.4, stateful=True)
    stateful(X[:, :7])
    stateful.reset_state()
    stateful.set_weights(fused.get_weights()[:3])
    stateful(X[:, :7])
    second = numpy_outputs(stateful, X[:, 7:])[0]
    whole = numpy_outputs(fused, X)[0][:, -1]
    np.testing.assert_allclose(second, whole, atol=OUT_ATOL)


def test_initial_state_is_used():
    fused, generic = pair(residuals.Homogeneous(0.5))
    h0 = RNG.normal(size=(3, UNITS)).astype("float32")
    a = keras.ops.convert_to_numpy(fused(X, initial_state=[h0]))
    b = keras.ops.convert_to_numpy(generic(X, initial_state=[h0]))
    np.testing.assert_allclose(a, b, atol=OUT_ATOL)
    assert not np.allclose(a, keras.ops.convert_to_numpy(fused(X)))


def test_masking_matches_simple_rnn():
    x = X.copy()
    x[0, 10:] = 0.0
    x[1, 5:] = 0.0
    layer = kr.layers.WCRNN(UNITS, coupling=1.0, residual=None, return_sequences=True)
    simple = keras.layers.SimpleRNN(UNITS, return_sequences=True)
    masked = keras.Sequential([keras.Input((15, 2)), keras.layers.Masking(0.0), layer])
    masked_simple = keras.Sequential([keras.Input((15, 2)), keras.layers.Masking(0.0), simple])
    simple.set_weights(layer.get_weights())
    a, b = numpy_outputs(masked, x)[0], numpy_outputs(masked_simple, x)[0]
    np.testing.assert_allclose(a, b, atol=OUT_ATOL)
    # Masked steps carry the state: the last output equals the last unmasked one.
    np.testing.assert_allclose(a[1, -1], a[1, 4], atol=1e-6)


@pytest.mark.parametrize("kind", ["dropout", "recurrent_dropout"])
def test_dropout_matches_simple_rnn(kind):
    layer = kr.layers.WCRNN(UNITS, coupling=1.0, residual=None, seed=7, **{kind: 0.5})
    simple = keras.layers.SimpleRNN(UNITS, seed=7, **{kind: 0.5})
    layer(X)
    simple(X)
    simple.set_weights(layer.get_weights())
    train = keras.ops.convert_to_numpy(layer(X, training=True))
    np.testing.assert_allclose(train, keras.ops.convert_to_numpy(simple(X, training=True)), atol=OUT_ATOL)
    infer = keras.ops.convert_to_numpy(layer(X))
    np.testing.assert_allclose(infer, keras.ops.convert_to_numpy(simple(X)), atol=OUT_ATOL)
    assert not np.allclose(train, infer)


def test_layer_checks():
    check_layer(
        lambda: kr.layers.WCRNN(UNITS, residual=residuals.Rotational(angle=0.3, seed=0), dropout=0.1,
                                return_sequences=True),
        X,
        (3, 15, UNITS),
    )


def test_layer_checks_with_state_output():
    check_layer(
        lambda: kr.layers.WCRNN(UNITS, residual=residuals.Heterogeneous(seed=0), return_state=True),
        X,
        [(3, UNITS), (3, UNITS)],
    )


def test_properties_and_config():
    layer = kr.layers.WCRNN(8, coupling=0.05, residual=residuals.Homogeneous(0.9), go_backwards=True)
    assert layer.units == 8 and layer.coupling == 0.05
    assert isinstance(layer.residual, residuals.Homogeneous)
    config = layer.get_config()
    assert config["coupling"] == 0.05 and config["go_backwards"] is True
    assert "cell" not in config
    clone = kr.layers.WCRNN.from_config(config)
    assert clone.residual.radius == 0.9


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="units=-3"):
        kr.layers.WCRNN(-3)
    with pytest.raises(ValueError, match="coupling=inf"):
        kr.layers.WCRNN(4, coupling=float("inf"))
    with pytest.raises(ValueError, match="even number of units.*units=3"):
        kr.layers.WCRNN(3, residual=residuals.Rotational(angle=0.1))
    with pytest.raises(ValueError, match="expected ndim=3"):
        kr.layers.WCRNN(4)(np.zeros((2, 3), "float32"))


def test_numpy_scalar_arguments_are_accepted():
    layer = kr.layers.WCRNN(4, coupling=np.float32(0.05), dropout=np.float32(0.1))
    assert layer.coupling == 0.05 and layer.dropout == 0.1
    assert kr.layers.WCRNN.from_config(layer.get_config()).coupling == 0.05


@pytest.mark.parametrize("shape", [(1, 4), (2, 3), (4,), (2, 4, 1)])
def test_initial_state_of_the_wrong_shape_is_refused_before_the_kernel(shape):
    layer = kr.layers.WCRNN(4)
    x = np.ones((2, 5, 3), "float32")
    with pytest.raises(ValueError, match=r"`initial_state` must have shape \(2, 4\)"):
        layer(x, initial_state=np.ones(shape, "float32"))
    with pytest.raises(ValueError, match="`initial_state` must be one state"):
        layer(x, initial_state=[np.ones((2, 4), "float32")] * 2)
    out = layer(x, initial_state=[np.ones((2, 4), "float32")])
    assert tuple(out.shape) == (2, 4)


def test_other_features_after_build_are_refused_by_the_input_check():
    layer = kr.layers.WCRNN(4)
    layer(np.ones((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.ones((2, 5, 2), "float32"))


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool"])
def test_integer_inputs_are_computed_as_floats(dtype):
    # As keras.layers.SimpleRNN computes them: the values, in float32.
    x = np.random.default_rng(0).integers(0, 2, size=(2, 6, 3)).astype(dtype)
    layer = kr.layers.WCRNN(4, coupling=0.5, residual=residuals.Homogeneous(0.9),
                            return_sequences=True)
    expected = keras.ops.convert_to_numpy(layer(x.astype("float32")))
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), expected)
    cell_out = keras.layers.RNN(layer.cell, return_sequences=True)(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cell_out), expected, atol=1e-6)


def test_nan_inputs_give_nan_states_from_that_step_on():
    x = np.ones((2, 6, 3), "float32")
    x[0, 2, 1] = np.nan
    out = keras.ops.convert_to_numpy(kr.layers.WCRNN(4, return_sequences=True)(x))
    assert np.isnan(out[0, 2:]).all()
    assert np.isfinite(out[0, :2]).all() and np.isfinite(out[1]).all()


def test_an_empty_batch_gives_an_empty_output_like_simple_rnn():
    x = np.zeros((0, 5, 3), "float32")
    assert tuple(kr.layers.WCRNN(4)(x).shape) == tuple(keras.layers.SimpleRNN(4)(x).shape) == (0, 4)


def test_fit_learns_a_memory_task():
    # Recall the first input after 20 steps: a fading-memory net near
    # criticality should fit it quickly.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 20, 1)).astype("float32")
    y = x[:, 0, :]
    model = keras.Sequential([
        keras.Input((20, 1)),
        kr.layers.WCRNN(16, coupling=0.3, residual=residuals.Homogeneous(1.0)),
        keras.layers.Dense(1),
    ])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]


CROSS_BACKEND = """
from keras_residual import layers, residuals
import numpy as np

def make():
    return {
        "fused_rotational": layers.WCRNN(8, coupling=0.3, residual=residuals.Rotational(angle_range=(0.1, 1.0), seed=1), return_sequences=True),
        "fused_heterogeneous": layers.WCRNN(8, coupling=0.3, residual=residuals.Heterogeneous(seed=2), go_backwards=True),
        "fused_dense_state": layers.WCRNN(8, coupling=0.3, residual=residuals.Dense(seed=3), return_state=True),
        "cell_nonlinear": keras.layers.RNN(layers.WCRNNCell(8, coupling=0.3, residual=residuals.Nonlinear()), return_sequences=True),
    }
"""


@spans_backends
def test_outputs_agree_across_backends():
    assert_backends_agree(
        CROSS_BACKEND, RNG.normal(size=(2, 30, 3)).astype("float32"), atol=CROSS_BACKEND_ATOL
    )


@pytest.mark.only_backend(
    "jax", "torch", reason="checks that the fused layer does not import TensorFlow"
)
def test_training_does_not_import_tensorflow():
    # Keras' serialization machinery imports TensorFlow when it is installed;
    # looking up an activation through it cost a jax or torch process
    # ~500 MB and seconds. A fresh process: the suite itself imports it.
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, keras, keras_residual as kr\n"
        "m = keras.Sequential([keras.Input((5, 1)), kr.layers.WCRNN(4, residual="
        "kr.residuals.Rotational(angle=0.2)), keras.layers.Dense(1)])\n"
        "m.compile('adam', 'mse')\n"
        "m.fit(np.zeros((4, 5, 1)), np.zeros((4, 1)), verbose=0)\n"
        "kr.dynamics.lyapunov_spectrum(m.layers[0], np.zeros((2, 5, 1)))\n"
        # Copying a residual (and its initializer) for each layer went through
        # Keras' serialize too (a dense residual's +0.5 GB in rnn_speed).
        "R = kr.residuals\n"
        "for r in [R.Dense('orthogonal', scale=0.9, seed=4), R.Nonlinear(R.Dense(seed=1)),\n"
        "          R.Heterogeneous(seed=1), R.Rotational(angle_range=(0.1, 1.0), seed=2)]:\n"
        "    kr.layers.WCRNN(8, residual=r)(np.zeros((2, 3, 1), 'float32'))\n"
        "    keras.layers.RNN(kr.layers.WCRNNCell(8, residual=r))(np.zeros((2, 3, 1), 'float32'))\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout


def test_fused_kernels_cache_each_nonlinear_base_apart():
    """Kernels cache compiled loops by the residual form's `key`: in one
    process, Nonlinear residuals on different bases (same activation) each
    get their own loop, so each fused layer still equals its generic twin
    (a key without the base reused the first loop: IndexError or a
    StagingError on TensorFlow)."""
    bases = [residuals.Homogeneous(0.9), residuals.Identity(),
             residuals.Rotational(radius=0.9, angle=0.4), residuals.Dense(scale=0.8, seed=1),
             residuals.Heterogeneous(radius_range=(0.5, 1.0), seed=2)]
    keys = set()
    for base in bases:
        fused, generic = pair(residuals.Nonlinear(base), return_sequences=True)
        assert fused.uses_fused_kernel()
        keys.add(fused.cell.residual.form("float32").key)
        np.testing.assert_allclose(numpy_outputs(fused, X)[0], numpy_outputs(generic, X)[0],
                                   atol=OUT_ATOL)
        for a, b in zip(gradients(fused, X), gradients(generic, X)):
            np.testing.assert_allclose(a, b, **GRAD_TOL)
    assert len(keys) == 4  # Homogeneous and Heterogeneous share the diagonal form
