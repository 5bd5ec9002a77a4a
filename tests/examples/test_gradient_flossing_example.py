import json
import math
import os

import pytest

from tests.helpers import load_example


def test_gradient_flossing_example_smoke(tmp_path, one_torch_thread):
    example = load_example("gradient_flossing")
    summary = example.main(["--smoke", "--output", str(tmp_path)])
    runs = summary["runs"]
    assert {(r["model"], r["setting"]) for r in runs} == {
        (m, s) for m in example.MODELS for s in example.SETTINGS
    }
    for r in runs:
        assert len(r["val_accuracy"]) == 2 and all(0.0 <= a <= 1.0 for a in r["val_accuracy"])
        assert r["success"] == (r["steps_to_threshold"] is not None)
        for key in ("lambda_max_init", "lambda_max_start", "lambda_max_final", "seconds"):
            assert math.isfinite(r[key]), (key, r)
        if r["setting"] == "plain":
            # Nothing touched the weights before training.
            assert r["lambda_max_start"] == pytest.approx(r["lambda_max_init"], abs=1e-6)
    assert os.path.getsize(tmp_path / "gradient_flossing.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["runs"] == runs
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == len(runs)


def test_delayed_copy_target_is_the_bit_delay_steps_back():
    example = load_example("gradient_flossing")
    x, y = example.delayed_copy(64, delay=7, seed=0)
    assert x.shape == (64, 17, 1)
    assert ((x[:, 17 - 1 - 7, 0] > 0) == (y[:, 0] > 0)).all()


def test_gradient_flossing_arguments(capsys):
    example = load_example("gradient_flossing")
    args = example.parse_args(["--delays", "5,20", "--models", "wcrnn"])
    assert args.delays == [5, 20] and args.models == ["wcrnn"]
    for bad, message in ((["--delays", "5,x"], "'x' is not a valid int"),
                         (["--settings", "never"], "'never' is not one of")):
        with pytest.raises(SystemExit):
            example.parse_args(bad)
        assert message in capsys.readouterr().err
