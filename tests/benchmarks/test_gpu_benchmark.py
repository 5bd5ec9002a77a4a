"""Smoke test of `benchmarks/gpu.py`, the one command a rare GPU run makes.

The script runs here with `--small` (tiny sizes, on the CPU) in a subprocess
under the current backend, with TensorFlow hidden as it is on the GPU
machine, and every section must come back with numbers, not errors.
"""

import json
import math
import os
import subprocess
import sys

import keras
import pytest

from tests.helpers import REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "gpu.py")
SECTIONS = ("rnn train step", "lyapunov_spectrum", "callback cost", "training throughput")

# Put first on PYTHONPATH, this makes `import tensorflow` fail in the subprocess from its
# start, as on the GPU machine (which has none): anything that needs it shows as an error.
HIDE_TENSORFLOW = 'import sys\nsys.modules["tensorflow"] = None\n'


def _run(args, backend, tmp_path, timeout=300):
    shim = tmp_path / "no_tensorflow"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(HIDE_TENSORFLOW)
    env = dict(os.environ, KERAS_BACKEND=backend)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(shim), REPO_ROOT, os.environ.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, SCRIPT, *args], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=timeout,
    )


def test_gpu_benchmark_refuses_tensorflow(tmp_path):
    proc = _run(["--small"], "tensorflow", tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "set KERAS_BACKEND=jax or torch" in proc.stderr


def test_gpu_benchmark_rejects_unknown_section(tmp_path):
    proc = _run(["--only", "rnn,nonsense"], "jax", tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "--only" in proc.stderr and "nonsense" in proc.stderr


@pytest.mark.only_backend(
    "jax", "torch",
    reason="benchmarks/gpu.py measures jax and torch, the backends of the GPU machine it is "
           "for (which has no TensorFlow); under tensorflow it refuses to run",
)
def test_gpu_benchmark_small(tmp_path):
    backend = keras.backend.backend()
    out = tmp_path / "gpu.json"
    proc = _run(["--small", "--json", str(out)], backend, tmp_path)
    log = proc.stdout[-4000:] + "\n" + proc.stderr[-4000:]
    assert proc.returncode == 0, log
    with open(out) as f:
        report = json.load(f)

    assert report["backend"] == backend and report["small"] is True
    assert report["tensorflow_imported"] is False
    assert report["versions"]["keras"] == keras.__version__ and backend in report["versions"]
    assert report["device"]
    rows = report["rows"]
    for row in rows:
        assert "error" not in row and "skipped" not in row, row
        assert isinstance(row["value"], float) and math.isfinite(row["value"]), row
    cases = {(r["section"], r["case"]) for r in rows}
    # Every section measured what it is for, each against its baseline of the same run.
    expected = {
        ("rnn train step", "T=16 WCRNN"), ("rnn train step", "T=16 SimpleRNN"),
        ("callback cost", "LyapunovCallback"), ("callback cost", "ReLUSurvivalCallback"),
        ("training throughput", "ResNet20 8x8 residual"),
        ("training throughput", "ResNet20 8x8 pnnh"),
    }
    expected |= {("lyapunov_spectrum", f"{model} {method}")
                 for model in ("WCRNN", "SimpleRNN", "LSTM")
                 for method in ("householder", "cholesky")}
    if backend == "torch":
        expected |= {("rnn train step", "T=16 LSTM"), ("rnn train step", "T=16 torch.nn.RNN")}
    assert cases == expected
    for row in rows:
        if row["section"] == "callback cost":
            # Extra seconds per epoch: noise can make a tiny one negative.
            assert row["ratio_to"] == "epoch without" and math.isfinite(row["ratio"]), row
        else:
            assert row["value"] > 0 and row["ratio"] > 0 and row["ratio_to"], row
        if row["case"] in ("T=16 SimpleRNN", "WCRNN householder", "ResNet20 8x8 residual"):
            assert row["ratio"] == 1.0
    assert next(r for r in rows if r["case"] == "T=16 WCRNN")["note"] == "fused kernel"

    # The one table, printed last, with a line per row.
    table = proc.stdout[proc.stdout.index("| section | case |"):]
    assert table.startswith(report["table"])
    for section, case in cases:
        assert f"| {section} | {case} |" in table
    assert "tensorflow imported: no" in proc.stdout
