import json
import os

from tests.helpers import load_example


def test_weak_coupling_smoke(tmp_path):
    example = load_example("weak_coupling")
    summary = example.main(["--smoke", "--output", str(tmp_path)])
    assert len(summary["results"]) == 6  # 3 residuals x 2 couplings
    for r in summary["results"]:
        # Weak coupling: the spectrum is near log|eig R| even on this tiny run.
        assert r["max_abs_difference"] < 0.1, r
    assert os.path.getsize(tmp_path / "weak_coupling.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["results"] == summary["results"]
