"""Bad arguments to the newer API get a clear error, on every backend.

A sweep of the classes a bad-input probe found (339 inputs x 3 backends):
every argument of `LyapunovExponents`, `GradientFlossing`,
`LyapunovCallback`, `ReLUSurvivalCallback`, `lyapunov_spectrum`,
`register_tangent` and `tangent_map` gets values of the wrong kind (None,
strings, bools, floats, negatives, NaN, inf, empty and nested lists, empty
arrays, objects), and each is refused with a `ValueError` or `TypeError`
that names the argument, when the object is made (not inside `fit` or a
backend kernel). Values an argument does take are listed per argument.
"""

import keras
import numpy as np
import pytest

import keras_residual as kr

X = np.random.default_rng(0).normal(size=(4, 10, 2)).astype("float32")
BAD = {
    "none": None, "string": "x", "bool": True, "float": 1.5, "negative": -1, "zero": 0,
    "nan": float("nan"), "inf": float("inf"), "empty_list": [], "list": [1, 2],
    "empty_array": np.zeros((0,)), "object": object(),
}
# The values each argument takes among BAD (a name, None where None means a
# default, a number where the number is valid, ...).
ACCEPTED = {
    "LyapunovExponents": {
        "num_exponents": {"none"}, "warmup": {"zero"}, "seed": {"none", "zero"},
        "trajectory_gradient": {"bool"}, "qr_interval": set(),
    },
    "GradientFlossing": {
        "num_exponents": set(), "targets": {"float", "negative", "zero"},
        "weight": {"float"}, "every_n_steps": set(), "until_epoch": {"none", "zero"},
        "steps": set(), "layer": {"none", "string"}, "warmup": {"zero"},
        "qr_interval": set(), "seed": {"none", "zero"}, "optimizer": {"none"},
        "probe_is_layer_input": {"bool"}, "trajectory_gradient": {"bool"},
    },
    "LyapunovCallback": {
        "layer": {"none", "string"}, "num_exponents": {"none"}, "warmup": {"zero"},
        "qr_interval": set(), "every_n_epochs": set(), "prefix": {"string"},
        "initial_state": {"none"}, "seed": {"none", "zero"}, "dtype": {"none"},
        "verbose": {"bool", "zero"}, "probe_is_layer_input": {"bool"},
        "tensorboard": {"none", "string"},
    },
    "ReLUSurvivalCallback": {"layers": {"none", "string"}, "every_n_epochs": set()},
    "lyapunov_spectrum": {
        "num_exponents": {"none"}, "warmup": {"zero"}, "qr_interval": set(),
        "initial_state": {"none"}, "seed": {"none", "zero"}, "dtype": {"none"},
        "progress": {"bool", "zero"}, "jacobian": set(), "qr_method": set(),
    },
}


def _rnn():
    rnn = keras.layers.SimpleRNN(3)
    rnn(X)
    return rnn


MAKERS = {
    "LyapunovExponents": lambda **kw: kr.layers.LyapunovExponents(_rnn(), **kw),
    "GradientFlossing": lambda **kw: kr.callbacks.GradientFlossing(X, **kw),
    "LyapunovCallback": lambda **kw: kr.callbacks.LyapunovCallback(X, **kw),
    "ReLUSurvivalCallback": lambda **kw: kr.callbacks.ReLUSurvivalCallback(X, **kw),
    "lyapunov_spectrum": lambda **kw: kr.dynamics.lyapunov_spectrum(_rnn(), X, **kw),
}
CASES = [
    (api, argument, kind)
    for api, arguments in ACCEPTED.items()
    for argument, accepted in arguments.items()
    for kind in BAD
    if kind not in accepted
]


@pytest.mark.parametrize("api, argument, kind", CASES)
def test_a_wrong_value_is_refused_naming_the_argument(api, argument, kind):
    with pytest.raises((ValueError, TypeError)) as info:
        MAKERS[api](**{argument: BAD[kind]})
    message = str(info.value)
    assert any(f"{argument}{end}" in message for end in ("`", "=", "[")), message


@pytest.mark.parametrize("kind", sorted(BAD))
def test_probes_that_are_no_batch_are_refused(kind):
    if kind == "list":  # [1, 2]: a batch of two scalar inputs
        return
    for make in (kr.callbacks.GradientFlossing, kr.callbacks.LyapunovCallback,
                 kr.callbacks.ReLUSurvivalCallback):
        with pytest.raises((ValueError, TypeError), match="probe_inputs"):
            make(BAD[kind])


@pytest.mark.parametrize("kind", sorted(BAD))
def test_register_tangent_and_tangent_map_refuse_non_cells(kind):
    with pytest.raises(TypeError, match="cell_class"):
        kr.dynamics.register_tangent(BAD[kind])
    with pytest.raises(TypeError, match="`cell` of tangent_map"):
        kr.dynamics.tangent_map(BAD[kind])


@pytest.mark.parametrize("inputs, match", [
    (np.zeros((2, 3)), "rank|sequences"),                 # no time axis
    (np.zeros((2, 0, 2)), "at least one time step"),     # zero steps
    (np.zeros((2, 5, 3)), "3|features|incompatible"),    # another number of features
    # Not numbers: our error on tensorflow; Keras' own conversion error, before
    # the layer's call, on jax and torch (as for keras.layers.Dense).
    (np.array([[["a", "b"]]]), "`inputs` must hold numbers|convert string|dtype: str"),
])
def test_lyapunov_exponents_refuses_inputs_before_any_kernel(inputs, match):
    layer = kr.layers.LyapunovExponents(_rnn())
    with pytest.raises((ValueError, TypeError), match=match):
        layer(inputs)


def test_mismatches_found_at_fit_start_are_errors_before_any_step():
    steps = []

    class Steps(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            steps.append(batch)

    def fit(callback):
        model = keras.Sequential([keras.Input((10, 2)), keras.layers.SimpleRNN(3),
                                  keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        model.fit(X, X[:, 0, :1], epochs=1, verbose=0, callbacks=[Steps(), callback])

    for callback, match in [
        (kr.callbacks.GradientFlossing(np.zeros((2, 10, 5), "float32")), "probe_inputs"),
        (kr.callbacks.GradientFlossing(X, num_exponents=4), "num_exponents"),
        (kr.callbacks.GradientFlossing(X, layer="nope"), "nope"),
        (kr.callbacks.GradientFlossing(X, warmup=10), "warmup"),
        (kr.callbacks.LyapunovCallback(X, warmup=10), "warmup"),
        (kr.callbacks.LyapunovCallback(X, num_exponents=4), "num_exponents"),
        (kr.callbacks.LyapunovCallback(X, initial_state=np.zeros((4, 7))), "initial_state"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            fit(callback)
        assert steps == [], (callback, steps)
