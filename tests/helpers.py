"""Shared test helpers: the Keras layer check and the cross-backend check.

`check_layer` verifies the Keras conventions every public layer of this
library promises (config round trip, `.keras` round trip, symbolic call, one
`fit` step, mixed precision). `assert_backends_agree` runs one snippet under
tensorflow, jax and torch in subprocesses, with the same weights, and checks
the outputs agree: the guarantee users rely on when they switch
`KERAS_BACKEND`.
"""

import contextlib
import copy
import json
import os
import subprocess
import sys
import tempfile
import textwrap

import keras
import numpy as np
import pytest

BACKENDS = ("tensorflow", "jax", "torch")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A test that runs all three backends itself (in subprocesses, through
# `assert_backends_agree`) needs to run in one pass of the suite only.
# `only_backend` (tests/conftest.py) reports the other passes' skips as by design.
spans_backends = pytest.mark.only_backend(
    "tensorflow",
    reason="spans the three backends itself (subprocesses): runs once, in the tensorflow pass",
)


def _flat(outputs):
    return [keras.ops.convert_to_numpy(o) for o in keras.tree.flatten(outputs)]


def _shapes(outputs):
    return [tuple(o.shape) for o in keras.tree.flatten(outputs)]


def load_example(name):
    """The module of `examples/<name>.py` (the examples are scripts, not a
    package), for the examples' smoke tests."""
    import importlib.util

    path = os.path.join(REPO_ROOT, "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_layer(
    layer_factory,
    inputs,
    expected_output_shape=None,
    fit=True,
    mixed_precision=True,
    atol=1e-6,
):
    """Run the Keras-conventions checks on a layer.

    Args:
        layer_factory: callable with no argument returning a new layer.
        inputs: NumPy array (one input) fed to the layer.
        expected_output_shape: shape (or list of shapes for several outputs)
            of the eager output; `None` skips that comparison.
        fit: whether to run one `fit` step on a model around the layer.
        mixed_precision: whether to check the layer under `mixed_float16`.
        atol: tolerance of the `.keras` round trip.

    Returns:
        The eager outputs of the first layer, as a list of NumPy arrays.

    Raises:
        AssertionError: when a check fails (with the check's name).
    """
    inputs = np.asarray(inputs)

    # 1. Eager call and output shape.
    layer = layer_factory()
    eager = layer(inputs)
    shapes = _shapes(eager)
    if expected_output_shape is not None:
        expected = expected_output_shape
        if not isinstance(expected, list):
            expected = [expected]
        assert shapes == [tuple(s) for s in expected], (
            f"output shape: got {shapes}, expected {expected}"
        )

    # 2. get_config / from_config round trip.
    config = layer.get_config()
    clone = layer.__class__.from_config(copy.deepcopy(config))
    clone_config = clone.get_config()
    assert json.dumps(config, sort_keys=True, default=str) == json.dumps(
        clone_config, sort_keys=True, default=str
    ), (
        "get_config/from_config round trip changed the config:\n"
        f"{config}\n!=\n{clone_config}"
    )
    clone(inputs)
    assert len(clone.weights) == len(layer.weights), (
        "from_config clone has a different number of weights: "
        f"{len(clone.weights)} != {len(layer.weights)}"
    )

    # 3. Symbolic call.
    symbolic_layer = layer_factory()
    symbolic_input = keras.Input(shape=inputs.shape[1:])
    symbolic_output = symbolic_layer(symbolic_input)
    symbolic_shapes = _shapes(symbolic_output)
    eager_shapes_unbatched = [(None,) + s[1:] for s in shapes]
    assert symbolic_shapes == eager_shapes_unbatched, (
        f"symbolic output shape: got {symbolic_shapes}, "
        f"eager call gave {shapes}"
    )
    model = keras.Model(symbolic_input, symbolic_output)

    # 4. One fit step.
    if fit:
        targets = [np.zeros(s, dtype="float32") for s in shapes]
        model.compile(optimizer="sgd", loss=["mse"] * len(targets))
        history = model.fit(
            inputs,
            targets if len(targets) > 1 else targets[0],
            batch_size=inputs.shape[0],
            epochs=1,
            verbose=0,
        )
        loss = history.history["loss"][-1]
        assert np.isfinite(loss), f"fit step produced a non-finite loss {loss}"

    # 5. .keras save/load round trip with identical outputs.
    before = _flat(model(inputs))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    after = _flat(loaded(inputs))
    assert len(before) == len(after), "reloaded model has another output count"
    for b, a in zip(before, after):
        np.testing.assert_allclose(
            a, b, atol=atol, err_msg=".keras round trip changed the outputs"
        )

    # 6. Mixed precision.
    if mixed_precision:
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            mp_layer = layer_factory()
            mp_out = keras.tree.flatten(mp_layer(inputs))
            for o in mp_out:
                assert keras.backend.standardize_dtype(o.dtype) == "float16", (
                    f"mixed_float16 output has dtype {o.dtype}"
                )
                assert np.all(np.isfinite(keras.ops.convert_to_numpy(o))), (
                    "mixed_float16 output is not finite"
                )
            for w in mp_layer.weights:
                assert w.dtype in ("float32", "int32", "int64", "bool"), (
                    f"mixed_float16 variable {w.path} has dtype {w.dtype}"
                )
        finally:
            keras.config.set_dtype_policy(previous)

    return _flat(eager)


_RUNNER = r'''
import os, sys
import numpy as np
import keras

io_path, mode = sys.argv[1], sys.argv[2]
data = dict(np.load(io_path + ".in.npz"))
inputs = [data[k] for k in sorted(k for k in data if k.startswith("x"))]
inputs = inputs[0] if len(inputs) == 1 else inputs

SNIPPET

transfer = "TRANSFER"
if transfer == "keras_file" and mode == "load":
    # The objects come from the .keras files the first backend saved.
    names = open(io_path + ".names").read().split()
    objects = {n: keras.saving.load_model(f"{io_path}.{n}.keras") for n in names}
else:
    objects = make()
    if not isinstance(objects, dict):
        objects = {"output": objects}
weights_file = io_path + ".weights.npz"
saved = dict(np.load(weights_file)) if mode == "load" and transfer == "weights" else {}
result, weights = {}, {}
for name in sorted(objects):
    obj = objects[name]
    obj(inputs)  # build
    if mode == "load" and transfer == "weights":
        count = len([k for k in saved if k.startswith(name + "/")])
        obj.set_weights([saved[f"{name}/{i}"] for i in range(count)])
    elif mode == "save":
        for i, w in enumerate(obj.get_weights()):
            weights[f"{name}/{i}"] = w
        if transfer == "keras_file":
            obj.save(f"{io_path}.{name}.keras")
    outs = keras.tree.flatten(obj(inputs))
    for i, o in enumerate(outs):
        result[f"{name}/{i}"] = keras.ops.convert_to_numpy(o)
if mode == "save" and transfer == "keras_file":
    open(io_path + ".names", "w").write(" ".join(sorted(objects)))
if mode == "save":
    np.savez(weights_file, **weights)
np.savez(io_path + "." + keras.backend.backend() + ".out.npz", **result)
'''


def _run(backend, script, io_path, mode):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, script, io_path, mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_under_backends(snippet, inputs, backends=BACKENDS, transfer="weights"):
    """Run a snippet under several backends with the same weights.

    Args:
        snippet: Python source defining `make()`, which returns a Keras
            layer or model, or a dict of them. Each is called on `inputs`;
            the first backend's initial weights are given to all others.
        inputs: a NumPy array or a list of them.
        backends: backend names; the first one creates the weights.
        transfer: how the other backends get them: `"weights"` (each calls
            `make()` and `set_weights` with the first backend's weights) or
            `"keras_file"` (the first backend saves each object, which must
            be a `keras.Model`, with `model.save(...keras)`; the others
            `keras.saving.load_model` it, without calling `make()`: the
            check that a model saved under one backend loads under another).

    Returns:
        dict backend -> dict output name -> NumPy array.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "snippet.py")
        with open(script, "w") as f:
            if transfer not in ("weights", "keras_file"):
                raise ValueError(f"transfer must be 'weights' or 'keras_file'; got {transfer!r}")
            runner = _RUNNER.replace("TRANSFER", transfer)
            f.write(runner.replace("SNIPPET", textwrap.dedent(snippet)))
        io_path = os.path.join(tmp, "io")
        np.savez(
            io_path + ".in.npz",
            **{f"x{i:02d}": np.asarray(x) for i, x in enumerate(inputs)},
        )
        first = _run(backends[0], script, io_path, "save")
        log = first.communicate()[0]
        if first.returncode != 0:
            raise AssertionError(f"snippet failed under {backends[0]}:\n{log}")
        procs = {b: _run(b, script, io_path, "load") for b in backends[1:]}
        for b, p in procs.items():
            log = p.communicate()[0]
            if p.returncode != 0:
                raise AssertionError(f"snippet failed under {b}:\n{log}")
        return {
            b: dict(np.load(f"{io_path}.{b}.out.npz")) for b in backends
        }


def assert_backends_agree(snippet, inputs, backends=BACKENDS, atol=1e-5, transfer="weights"):
    """Assert that a snippet gives the same outputs under every backend.

    See `run_under_backends` for the snippet's form and `transfer`. Outputs
    are compared to the first backend's, elementwise within `atol` (float32
    default).

    Returns:
        The outputs, as `run_under_backends` returns them.
    """
    results = run_under_backends(snippet, inputs, backends, transfer)
    reference = results[backends[0]]
    for backend in backends[1:]:
        other = results[backend]
        assert sorted(other) == sorted(reference), (
            f"{backend} produced outputs {sorted(other)}, "
            f"{backends[0]} produced {sorted(reference)}"
        )
        for key in reference:
            np.testing.assert_allclose(
                other[key],
                reference[key],
                atol=atol,
                rtol=0,
                err_msg=f"{key}: {backend} differs from {backends[0]}",
            )
    return results


def gradients(layer, inputs, training=False):
    """Gradients of `sum(output ** 2)` w.r.t. `layer.trainable_variables`,
    with the backend's own autodiff (GradientTape, jax.grad, autograd).

    Returns:
        list of NumPy arrays, in the order of `layer.trainable_variables`.
    """
    backend = keras.backend.backend()
    variables = layer.trainable_variables
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            outputs = keras.tree.flatten(layer(inputs, training=training))
            loss = tf.add_n([tf.reduce_sum(tf.square(o)) for o in outputs])
        return [g.numpy() for g in tape.gradient(loss, variables)]
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        trainable = [v.value for v in variables]
        non_trainable = [v.value for v in layer.non_trainable_variables]

        def loss_fn(trainable):
            outputs, _ = layer.stateless_call(trainable, non_trainable, inputs, training=training)
            return sum(jnp.sum(jnp.square(o)) for o in keras.tree.flatten(outputs))

        return [np.asarray(g) for g in jax.grad(loss_fn)(trainable)]
    if backend == "torch":
        for v in variables:
            v.value.grad = None
        outputs = keras.tree.flatten(layer(inputs, training=training))
        loss = sum((o**2).sum() for o in outputs)
        loss.backward()
        return [v.value.grad.detach().cpu().numpy() for v in variables]
    raise ValueError(f"gradients: unsupported backend {backend!r}")


@contextlib.contextmanager
def float64():
    """A scope where float64 tensors and Keras ops stay float64 on every
    backend: the engine's float64 compute scope (JAX's x64 mode, and Keras'
    float64 promotion on jax and torch, keras-team/keras#23704)."""
    from keras_residual.dynamics.lyapunov import loop
    from keras_residual.dynamics.lyapunov._backends import get_backend

    with loop.compute_scope(get_backend(), "float64"):
        yield


def batch_jacobian(fn, h, *args):
    """d fn(h, *args)[b, i] / d h[b, j] for a batched map (B, N) -> (B, M)
    whose extra arguments are batched too, with the backend's autodiff
    (`tf.GradientTape.batch_jacobian`, `jax.jacfwd`, `torch.func.jacrev`).
    Returns a (B, M, N) NumPy array."""
    backend = keras.backend.backend()
    h = keras.ops.convert_to_tensor(h)
    args = [keras.ops.convert_to_tensor(a) for a in args]

    def single(hb, *ab):
        return fn(hb[None], *(a[None] for a in ab))[0]

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(h)
            out = fn(h, *args)
        return tape.batch_jacobian(out, h).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.vmap(jax.jacfwd(single))(h, *args))
    if backend == "torch":
        import torch

        return torch.func.vmap(torch.func.jacrev(single))(h, *args).detach().cpu().numpy()
    raise ValueError(f"batch_jacobian: unsupported backend {backend!r}")
