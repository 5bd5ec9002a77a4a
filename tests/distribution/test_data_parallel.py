"""Training under `keras.distribution.DataParallel` on 2 virtual CPU devices.

What `DataParallel` promises is the one-device step on the global batch: the
batch is split over the devices, but the loss, the batch-normalization
statistics and the gradients are those of the whole batch, and every replica
applies the same update. The test checks that step, on one device and on two
(JAX, `XLA_FLAGS=--xla_force_host_platform_device_count=2`, each run in its
own subprocess): a PNNH ResNet20 with `ReLUSurvivalCallback` for one step, and
a WCRNN with `LyapunovCallback` for two epochs (its first step's gradients and
the losses and exponents of every epoch).

It does not compare a ResNet over several steps. Two devices sum in another
order than one, so results differ by float32 rounding (about 1e-7); where a
ReLU pre-activation lies within that distance of 0 (one entry in several
hundred thousand does, every few steps), its sign and with it its gradient
differ, which moves a few tens of the 79 gradients by 1-5% at once; SGD on
this small net then amplifies that, from step to step, to a 1.5% difference in
the loss after 8 steps. One device does this too (its fused training step
against an op-by-op gradient). So the ResNet's gradients are compared in two
ways: those of the last layer, which depend on forward values only, to
float32 rounding; all of them to a bound that such a ReLU flip stays under
and per-device batch statistics (measured here) would not.

Keras' `DataParallel` runs on the JAX backend, so the test runs once, in the
JAX pass of the suite.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.only_backend(
    "jax", reason="keras.distribution.DataParallel runs on JAX; this test runs in the jax pass"
)

WORKER = textwrap.dedent(
    r'''
    import json, sys
    import numpy as np
    import jax
    import keras
    import keras_residual as kr

    mode, out = sys.argv[1], sys.argv[2]
    assert len(jax.devices()) == 2, jax.devices()
    if mode == "data_parallel":
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=keras.distribution.list_devices())
        )
    arrays = {}

    def first_gradients(optimizer_class):
        """`optimizer_class` that also keeps the gradients of its first step."""

        class FirstGradients(optimizer_class):
            def build(self, variables):
                super().build(variables)
                self.first_gradients = {
                    v.path: self.add_variable_from_reference(v, "first_gradient")
                    for v in variables
                }

            def update_step(self, gradient, variable, learning_rate):
                slot = self.first_gradients[variable.path]
                first = keras.ops.equal(self.iterations.value, 0)
                self.assign(slot, keras.ops.where(first, gradient, slot.value))
                super().update_step(gradient, variable, learning_rate)

        return FirstGradients

    def keep_gradients(prefix, model, optimizer):
        assert len(optimizer.first_gradients) == len(model.trainable_variables)
        for path, slot in optimizer.first_gradients.items():
            arrays[f"{prefix}_gradient/{path}"] = np.asarray(slot.value)

    # A PNNH CIFAR ResNet20 with the survival callback: one step on a global
    # batch of 8 (4 per device).
    rng = np.random.default_rng(0)
    images = rng.random((8, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 10, 8)
    keras.utils.set_random_seed(0)
    model = kr.applications.PNNHResNet20(input_shape=(16, 16, 3), classes=10)
    optimizer = first_gradients(keras.optimizers.SGD)(0.01)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    if mode == "single":
        # What the step would be with per-device batch statistics: the mean
        # of the two halves' losses and gradients, each half normalized by
        # its own statistics.
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def half_loss(trainable, x, y):
            out, _ = model.stateless_call(trainable, non_trainable, x, training=True)
            return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, out))

        halves = [jax.value_and_grad(half_loss)(trainable, images[i:i + 4], labels[i:i + 4])
                  for i in (0, 4)]
        arrays["per_device_stats_loss"] = np.mean([float(loss) for loss, _ in halves])
        for v, g0, g1 in zip(model.trainable_variables, halves[0][1], halves[1][1]):
            arrays[f"per_device_stats_gradient/{v.path}"] = (np.asarray(g0) + np.asarray(g1)) / 2
    survival = kr.callbacks.ReLUSurvivalCallback(images)
    history = model.fit(images, labels, batch_size=8, epochs=1, shuffle=False, verbose=0,
                        callbacks=[survival])
    arrays["resnet_loss"] = np.asarray(history.history["loss"])
    arrays["resnet_survival"] = np.asarray(history.history["relu_survival_mean"])
    keep_gradients("resnet", model, optimizer)
    for v in model.non_trainable_variables:  # the moving statistics after the step
        arrays[f"resnet_statistic/{v.path}"] = np.asarray(v.value)

    # A WCRNN with the Lyapunov callback: two epochs of two steps.
    sequences = rng.normal(size=(16, 20, 2)).astype("float32")
    targets = rng.integers(0, 3, 16)
    keras.utils.set_random_seed(1)
    rnn = keras.Sequential([
        keras.Input((20, 2)),
        kr.layers.WCRNN(8, coupling=0.1, residual=kr.residuals.Rotational(angle=0.3)),
        keras.layers.Dense(3, activation="softmax"),
    ])
    optimizer = first_gradients(keras.optimizers.Adam)(1e-2)
    rnn.compile(optimizer, "sparse_categorical_crossentropy")
    lyapunov = kr.callbacks.LyapunovCallback(sequences[:4], warmup=5)
    history = rnn.fit(sequences, targets, batch_size=8, epochs=2, shuffle=False, verbose=0,
                      callbacks=[lyapunov])
    arrays["wcrnn_loss"] = np.asarray(history.history["loss"])
    arrays["lyapunov_max"] = np.asarray(history.history["lyapunov_max"])
    keep_gradients("wcrnn", rnn, optimizer)
    np.savez(out + ".npz", **arrays)
    with open(out + ".json", "w") as f:
        json.dump({"distribution": repr(keras.distribution.distribution())}, f)
    '''
)


def _start(mode, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        # The caller's XLA flags (thread settings, say) stay, after ours: XLA stops reading
        # at a word that is not a flag, as in "--xla_cpu_multi_thread_eigen=false
        # intra_op_parallelism_threads=1".
        XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {env.get('XLA_FLAGS', '')}".strip(),
        PYTHONPATH=REPO_ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    out = str(tmp_path / mode)
    proc = subprocess.Popen(
        [sys.executable, str(script), mode, out],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    return proc, out


def _finish(mode, proc, out):
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, f"{mode} run failed:\n{log[-6000:]}"
    with open(out + ".json") as f:
        info = json.load(f)
    return dict(np.load(out + ".npz")), info["distribution"]


def _group(arrays, prefix):
    """{variable path: array} of the arrays saved under `prefix/`."""
    return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}


def _relative_l2(a, b):
    """|a - b| / |b| over all the tensors of two {path: array} dicts."""
    assert sorted(a) == sorted(b)
    diff = sum(float(np.sum((a[k].astype("float64") - b[k]) ** 2)) for k in b)
    return np.sqrt(diff / sum(float(np.sum(b[k].astype("float64") ** 2)) for k in b))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("data_parallel")
    # The two runs are mostly compilation, single-threaded: run them side by side.
    started = {mode: _start(mode, tmp_path) for mode in ("single", "data_parallel")}
    return {mode: _finish(mode, *started[mode]) for mode in started}


def test_data_parallel_resnet_step_is_the_global_batch_step(runs):
    single, single_distribution = runs["single"]
    parallel, parallel_distribution = runs["data_parallel"]
    assert "DataParallel" in parallel_distribution
    assert "DataParallel" not in single_distribution

    # The loss of the step, a forward pass on the global batch: float32 eps 6e-8 x
    # sqrt(576-term conv sums) ~ 1.4e-6 per layer, ~20 layers (BN keeps the scale) ~ 1e-5.
    np.testing.assert_allclose(parallel["resnet_loss"], single["resnet_loss"], rtol=1e-5)
    # Per-device batch statistics would give another loss (0.4-3% away, measured).
    loss = single["resnet_loss"][0]
    assert abs(single["per_device_stats_loss"] - loss) > 100 * 1e-5 * loss

    # Moving statistics after the step: 0.9 x initial + 0.1 x the batch's mean or
    # variance, means over >= 128 values carrying the ~1e-5 relative error above.
    statistics, reference = _group(parallel, "resnet_statistic"), _group(single, "resnet_statistic")
    assert sorted(statistics) == sorted(reference)
    assert sum(path.endswith("moving_mean") for path in reference) == 19  # stem, 2 per block
    for path, expected in reference.items():
        np.testing.assert_allclose(
            statistics[path], expected, rtol=0, atol=1e-5 * np.abs(expected).max(), err_msg=path
        )

    gradients = _group(parallel, "resnet_gradient")
    reference = _group(single, "resnet_gradient")
    per_device = _group(single, "per_device_stats_gradient")
    assert sorted(gradients) == sorted(reference) == sorted(per_device)
    # The classifier's gradients, features^T (softmax - labels) / batch, are forward
    # values (continuous across ReLU kinks): 10 x the loss's 1e-5 for the 64-term sums.
    for path in ("predictions/kernel", "predictions/bias"):
        np.testing.assert_allclose(
            gradients[path], reference[path], rtol=0,
            atol=1e-4 * np.abs(reference[path]).max(), err_msg=path,
        )
    # All of them: a ReLU whose pre-activation is within rounding of 0 flipping sign moves
    # this by ~1.4e-2 (measured); per-device batch statistics move it by ~1.
    tolerance = 0.1
    assert _relative_l2(gradients, reference) < tolerance
    assert _relative_l2(per_device, reference) > 3 * tolerance

    # Survival rates after the step (inference mode, moving statistics): one entry of
    # the >= 4096 of a ReLU flipping moves the mean over its 28 ReLUs by 1e-5.
    np.testing.assert_allclose(parallel["resnet_survival"], single["resnet_survival"], atol=1e-4)


def test_data_parallel_wcrnn_training_matches_one_device(runs):
    single, _ = runs["single"]
    parallel, _ = runs["data_parallel"]
    # A smooth (tanh) net: no kink turns rounding into a jump, so the whole run compares.
    # First step: float32 eps 6e-8 x 20 time steps x sqrt(8-term sums) ~ 3.4e-6 -> 1e-5.
    gradients = _group(parallel, "wcrnn_gradient")
    reference = _group(single, "wcrnn_gradient")
    assert sorted(gradients) == sorted(reference)
    for path, ref in reference.items():
        np.testing.assert_allclose(
            gradients[path], ref, rtol=0, atol=1e-5 * np.abs(ref).max(), err_msg=path
        )
    # Losses of 2 epochs (4 Adam steps): the step's ~3.4e-6 carried through 4 updates -> 1e-5.
    np.testing.assert_allclose(parallel["wcrnn_loss"], single["wcrnn_loss"], rtol=1e-5)
    # Largest exponent, a mean of 15 logs of QR diagonals ~ 1e-2: the weights' 1e-5 -> 1e-6.
    np.testing.assert_allclose(parallel["lyapunov_max"], single["lyapunov_max"], rtol=0, atol=1e-6)
    for key in ("wcrnn_loss", "lyapunov_max", "resnet_loss", "resnet_survival"):
        assert np.all(np.isfinite(parallel[key])), (key, parallel[key])
