"""Training under `keras.distribution.DataParallel` on 2 virtual CPU devices.

A PNNH ResNet20 with `ReLUSurvivalCallback` and a WCRNN model with
`LyapunovCallback` train a few steps on one device and data-parallel on two
(JAX, `XLA_FLAGS=--xla_force_host_platform_device_count=2`, each in its own
subprocess); the losses and the callbacks' figures must agree. Keras'
`DataParallel` runs on the JAX backend, so the test runs once, in the JAX
pass of the suite.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tests.helpers import REPO_ROOT

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="keras.distribution.DataParallel runs on JAX; this test runs in the jax pass",
)

WORKER = textwrap.dedent(
    r'''
    import json, os, sys
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
    result = {}

    # A PNNH CIFAR ResNet20 with the survival callback.
    rng = np.random.default_rng(0)
    images = rng.random((32, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 10, 32)
    keras.utils.set_random_seed(0)
    model = kr.applications.PNNHResNet20(input_shape=(16, 16, 3), classes=10)
    # A small learning rate: at 0.05 this tiny-batch net amplifies float rounding
    # (reduction order differs between one and two devices) to 1e-2 in 4 steps.
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    survival = kr.callbacks.ReLUSurvivalCallback(images[:8])
    history = model.fit(images, labels, batch_size=8, epochs=2, shuffle=False, verbose=0,
                        callbacks=[survival])
    result["resnet_loss"] = history.history["loss"]
    result["resnet_survival"] = history.history["relu_survival_mean"]

    # A WCRNN with the Lyapunov callback.
    sequences = rng.normal(size=(16, 20, 2)).astype("float32")
    targets = rng.integers(0, 3, 16)
    keras.utils.set_random_seed(1)
    rnn = keras.Sequential([
        keras.Input((20, 2)),
        kr.layers.WCRNN(8, coupling=0.1, residual=kr.residuals.Rotational(angle=0.3)),
        keras.layers.Dense(3, activation="softmax"),
    ])
    rnn.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    lyapunov = kr.callbacks.LyapunovCallback(sequences[:4], warmup=5)
    history = rnn.fit(sequences, targets, batch_size=8, epochs=2, shuffle=False, verbose=0,
                      callbacks=[lyapunov])
    result["wcrnn_loss"] = history.history["loss"]
    result["lyapunov_max"] = history.history["lyapunov_max"]
    result["distribution"] = repr(keras.distribution.distribution())
    with open(out, "w") as f:
        json.dump(result, f)
    '''
)


def _run(mode, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / f"{mode}.json"
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
        PYTHONPATH=REPO_ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    proc = subprocess.run(
        [sys.executable, str(script), mode, str(out)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, f"{mode} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads(out.read_text())


def test_data_parallel_training_matches_one_device(tmp_path):
    single = _run("single", tmp_path)
    parallel = _run("data_parallel", tmp_path)
    assert "DataParallel" in parallel["distribution"]
    assert "DataParallel" not in single["distribution"]
    for key in ("resnet_loss", "resnet_survival", "wcrnn_loss", "lyapunov_max"):
        values = np.asarray(parallel[key])
        assert np.all(np.isfinite(values)), (key, values)
        np.testing.assert_allclose(values, single[key], rtol=1e-4, atol=1e-5, err_msg=key)
