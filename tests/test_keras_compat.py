"""Each private piece of Keras the library relies on (`keras_residual._keras_compat`).

One test per piece: if a Keras release renames or changes it, the test of
that piece fails here, by name, rather than a feature going silently wrong.
And the library outside `_keras_compat` imports nothing from `keras.src`
or `tensorflow.python` (the README says so).
"""

import ast
import os
import pathlib

import keras
import numpy as np
import pytest

import keras_residual as kr
from keras_residual import _keras_compat as compat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_only_keras_compat_touches_keras_internals():
    offenders = []
    for folder in ("keras_residual", "applications"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "_keras_compat.py":
                continue
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("keras.src", "tensorflow.python")
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.Import) and any(
                    a.name.startswith(("keras.src", "tensorflow.python")) for a in node.names
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.Attribute) and node.attr in (
                    "_flatten_layers", "_nodes_by_depth", "_inbound_nodes", "_functional",
                    "_keras_mask", "_omit_frequent_tracing_warning", "f_back", "f_locals",
                ):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not offenders, offenders


def test_dropout_rnn_cell_is_the_mixin_keras_rnn_prepares_masks_for():
    cell = kr.layers.WCRNNCell(4, dropout=0.5, seed=1)
    assert isinstance(cell, compat.DropoutRNNCell)
    keras.layers.RNN(cell)(np.ones((2, 3, 2), "float32"), training=True)
    mask = cell.get_dropout_mask(keras.ops.ones((2, 2)))
    assert mask is not None and tuple(mask.shape) == (2, 2)


def test_get_keras_mask_reads_the_mask_of_an_embedding():
    inputs = keras.Input((5,), dtype="int32")
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(inputs)
    mask = compat.get_keras_mask(embedded)
    assert mask is not None and tuple(mask.shape) == (None, 5)
    assert compat.get_keras_mask(keras.ops.ones((2, 3))) is None


def test_sublayers_lists_the_layers_a_custom_layer_tracks():
    class Block(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.inner = keras.Sequential([keras.layers.Dense(2), keras.layers.Dense(3)])
            self.rnn = keras.layers.SimpleRNN(2)

    block = Block()
    direct = compat.sublayers(block, recursive=False)
    assert block.inner in direct and block.rnn in direct
    assert block.inner.layers[0] not in direct
    nested = compat.sublayers(block)
    assert block.inner.layers[1] in nested and block.rnn.cell in nested
    assert block not in nested


def test_sequential_graph_is_the_functional_graph_of_a_built_sequential():
    model = keras.Sequential([keras.Input((4, 2)), keras.layers.Dense(3), keras.layers.LSTM(2)])
    graph = compat.sequential_graph(model)
    assert isinstance(graph, keras.Model) and isinstance(graph, keras.Function)
    assert model.layers[1] in graph.operations
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    assert compat.sequential_graph(unbuilt) is None


def test_call_nodes_give_each_call_of_a_layer_and_its_arguments():
    inputs = keras.Input((4, 2))
    state = keras.Input((3,))
    rnn = keras.layers.SimpleRNN(3)
    first = rnn(inputs, initial_state=[state])
    second = rnn(keras.layers.Dense(2)(inputs))
    model = keras.Model([inputs, state], [first, second])
    nodes = compat.call_nodes(model, rnn)
    assert len(nodes) == 2
    assert nodes[0].arguments.args[0] is inputs
    assert nodes[0].arguments.kwargs["initial_state"][0] is state
    # Calls in another model are not this graph's.
    other = keras.Model(inputs, rnn(inputs))
    assert len(compat.call_nodes(model, rnn)) == 2 and len(compat.call_nodes(other, rnn)) == 1


def test_calling_callbacks_finds_the_siblings_of_a_callback_in_fit():
    seen = {}

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["begin"] = compat.calling_callbacks(self)

    spy, board = Spy(), keras.callbacks.History()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[spy, board])
    assert spy in seen["begin"] and board in seen["begin"]
    assert compat.calling_callbacks(spy) == []  # called directly: no fit


def test_float64_ops_keep_float64():
    from keras_residual.dynamics.lyapunov._backends import get_backend

    with get_backend().compute_scope("float64"), compat.float64_ops():
        a = keras.ops.convert_to_tensor(np.full((2, 2), 1.0 / 3.0), "float64")
        for value in (keras.ops.matmul(a, a), keras.ops.tanh(a), a * a):
            assert keras.backend.standardize_dtype(value.dtype) == "float64"
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(keras.ops.matmul(a, a)),
                                      np.full((2, 2), 1.0 / 3.0) @ np.full((2, 2), 1.0 / 3.0))


def test_autocast_off_reads_a_mixed_layers_variables_in_float32():
    values = {}

    class Probe(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(2,), initializer="ones")

        def call(self, x):
            values["autocast"] = keras.backend.standardize_dtype(self.w.value.dtype)
            with compat.autocast_off():
                values["off"] = keras.backend.standardize_dtype(self.w.value.dtype)
            return x

    Probe(dtype="mixed_float16")(np.ones((1, 2), "float32"))
    assert values == {"autocast": "float16", "off": "float32"}


@pytest.mark.only_backend("tensorflow", reason="a TensorFlow flag (tf.function)")
def test_quiet_tracing_sets_tensorflows_flag():
    import tensorflow as tf

    function = compat.quiet_tracing(tf.function(lambda x: x))
    assert function._omit_frequent_tracing_warning is True


@pytest.mark.only_backend("tensorflow", reason="TensorFlow's tape (could_possibly_record)")
def test_tape_may_record_sees_a_tape_eagerly_and_while_tracing():
    import tensorflow as tf
    from tensorflow.python.eager import record

    assert callable(record.could_possibly_record)  # the piece itself
    seen = []
    traced = tf.function(lambda x: seen.append(compat.tape_may_record()) or x)
    assert compat.tape_may_record() is False
    traced(tf.constant(1.0))
    with tf.GradientTape():
        assert compat.tape_may_record() is True
        tf.function(lambda x: seen.append(compat.tape_may_record()) or x)(tf.constant(1.0))
    assert seen == [False, True]


def test_a_missing_internal_is_a_named_error():
    class Changed(keras.layers.Layer):  # as if a Keras release renamed it
        @property
        def _flatten_layers(self):
            raise AttributeError("_flatten_layers")

    with pytest.raises(compat.KerasInternalsError, match="_flatten_layers"):
        compat.sublayers(Changed())
    inputs = keras.Input((2,))
    graph = keras.Model(inputs, keras.ops.add(inputs, 1.0))
    operation = [op for op in graph.operations if not isinstance(op, keras.layers.Layer)][0]
    assert compat.sublayers(operation) == []  # an operation (keras.ops) holds no layers
    with pytest.raises(compat.KerasInternalsError, match="_nodes_by_depth"):
        compat.call_nodes(object(), object())


def test_readme_says_where_the_internals_are():
    readme = (ROOT / "README.md").read_text()
    assert "keras_residual/_keras_compat.py" in readme
    assert os.path.exists(ROOT / "keras_residual" / "_keras_compat.py")
