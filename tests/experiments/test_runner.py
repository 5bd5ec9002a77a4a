"""The grid runner: results files, keys, resuming after an interruption."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

from keras_residual import experiments as kx
from tests.helpers import REPO_ROOT


def counting_run(calls):
    def run(config, seed):
        calls.append((config["x"], seed))
        return {"value": config["x"] * 10 + seed, "curve": [np.float32(0.5), float("nan")]}

    return run


def test_keys_ignore_key_order_and_numpy_types():
    a = kx.run_key({"x": 1.0, "y": {"a": 2, "b": [1, 2]}}, 0)
    b = kx.run_key({"y": {"b": [np.int64(1), 2], "a": np.int32(2)}, "x": np.float64(1.0)}, 0)
    assert a == b
    assert kx.run_key({"x": 1.0}, 1) != kx.run_key({"x": 1.0}, 0)
    assert kx.run_key({"x": 1.0}, 0) != kx.run_key({"x": 1.5}, 0)
    with pytest.raises(ValueError, match="seed"):
        kx.run_key({"x": 1}, -1)
    with pytest.raises(TypeError, match="config"):
        kx.run_key([("x", 1)], 0)


def test_grid_product_and_merges():
    configs = kx.grid({"u": 8}, a=[1, 2], b=["p", "q", "r"])
    assert len(configs) == 6 and configs[1] == {"u": 8, "a": 1, "b": "q"}
    merged = kx.grid({"u": 8}, m=[{"+model": "lstm", "+u": 4}, "plain"])
    assert merged == [{"u": 4, "model": "lstm"}, {"u": 8, "m": "plain"}]
    with pytest.raises(TypeError, match="`a`"):
        kx.grid({}, a=3)
    with pytest.raises(TypeError, match="`base`"):
        kx.grid([1])


def test_run_grid_records_and_resumes(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    calls = []
    configs = kx.grid({}, x=[1, 2, 3])
    first = kx.run_grid(counting_run(calls), configs, [0, 1], path, name="t", max_runs=4)
    # Seed-major order: every configuration with seed 0 first.
    assert calls == [(1, 0), (2, 0), (3, 0), (1, 1)] and first["ran"] == 4
    out = capsys.readouterr().out
    assert "6 runs, 0 already in" in out and '[1/6] t: {"x":1}, seed 0' in out
    second = kx.run_grid(counting_run(calls), configs, [0, 1], path, name="t")
    assert calls[4:] == [(2, 1), (3, 1)] and second["ran"] == 2
    assert "4 already in" in capsys.readouterr().out
    records = second["records"]
    assert sorted((r["config"]["x"], r["seed"]) for r in records) == [
        (x, s) for x in (1, 2, 3) for s in (0, 1)]
    for r in records:
        assert r["result"]["value"] == r["config"]["x"] * 10 + r["seed"]
        assert r["result"]["curve"] == [0.5, None]  # NaN stored as null
        assert r["experiment"] == "t" and r["wall_seconds"] >= 0
        assert r["environment"]["backend"] in ("tensorflow", "jax", "torch")
        assert "keras" in r["environment"]["versions"]
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and len({json.loads(l)["key"] for l in lines}) == 6
    third = kx.run_grid(counting_run(calls), configs, [0, 1], path, verbose=0)
    assert third["ran"] == 0 and len(calls) == 6


def test_a_failing_run_is_not_recorded_and_is_retried(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    attempts = []

    def flaky(config, seed):
        attempts.append(config["x"])
        if config["x"] == 2 and attempts.count(2) == 1:
            raise RuntimeError("out of memory")
        return {"ok": True}

    out = kx.run_grid(flaky, kx.grid({}, x=[1, 2, 3]), [0], path, verbose=1)
    assert out["ran"] == 2 and len(out["failed"]) == 1
    assert "out of memory" in out["failed"][0][2]
    assert "FAILED (not recorded" in capsys.readouterr().err
    again = kx.run_grid(flaky, kx.grid({}, x=[1, 2, 3]), [0], path, verbose=0)
    assert again["ran"] == 1 and len(again["records"]) == 3 and attempts == [1, 2, 3, 2]


def test_a_truncated_line_is_ignored_and_redone(tmp_path):
    path = tmp_path / "r.jsonl"
    calls = []
    kx.run_grid(counting_run(calls), kx.grid({}, x=[1, 2]), [0], path, verbose=0)
    text = path.read_text()
    path.write_text(text[: len(text) - 20])  # the last record cut short, no newline
    with pytest.warns(RuntimeWarning, match="incomplete line"):
        assert len(kx.ResultsFile(path).records()) == 1
    with pytest.warns(RuntimeWarning):
        out = kx.run_grid(counting_run(calls), kx.grid({}, x=[1, 2]), [0], path, verbose=0)
    assert calls == [(1, 0), (2, 0), (2, 0)] and out["ran"] == 1
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["config"] == {"x": 2}  # on a line of its own
    with pytest.warns(RuntimeWarning):
        assert len(kx.ResultsFile(path).records()) == 2


def test_results_file_arguments(tmp_path):
    with pytest.raises(TypeError, match="path"):
        kx.ResultsFile(3)
    with pytest.raises(ValueError, match="key"):
        kx.ResultsFile(str(tmp_path / "r.jsonl")).append({"seed": 0})
    assert kx.ResultsFile(tmp_path / "missing.jsonl").records() == []
    with pytest.raises(TypeError, match="`run`"):
        kx.run_grid("train", [{}], [0], tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="`seed`"):
        kx.run_grid(lambda c, s: {}, [{}], [-1], tmp_path / "r.jsonl")


SWEEP = """
import sys, time
from keras_residual import experiments as kx

def run(config, seed):
    time.sleep(0.3)
    return {"x": config["x"], "seed": seed}

kx.run_grid(run, kx.grid({}, x=list(range(6))), [0, 1], sys.argv[1], name="killed", verbose=0)
"""


def test_a_killed_sweep_resumes_without_repeating(tmp_path):
    """Kill a sweep process mid-grid (SIGKILL), rerun it: no run twice, none missing."""
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(SWEEP))
    path = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and len(path.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the sweep ended before it was killed: {proc.stderr.read()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [json.loads(l)["key"] for l in path.read_text().splitlines() if l.endswith("}")]
    assert 3 <= len(before) < 12, "the sweep should have been stopped part way"
    subprocess.run([sys.executable, str(script), str(path)], env=env, check=True, timeout=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a line cut by the kill, if any
        records = kx.ResultsFile(path).records()
    keys = [json.loads(l)["key"] for l in path.read_text().splitlines() if l.endswith("}")]
    assert len(records) == 12 and len(keys) == 12  # complete, and nothing ran twice
    assert keys[: len(before)] == before
    assert sorted((r["result"]["x"], r["result"]["seed"]) for r in records) == [
        (x, s) for x in range(6) for s in (0, 1)]
