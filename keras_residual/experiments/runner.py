"""The grid runner: configurations x seeds, one results line per finished run.

```python
from keras_residual import experiments as kx

configs = kx.grid({"task": "adding", "length": 100, "steps": 3000, ...},
                  residual=[{"kind": "identity"}, {"kind": "homogeneous", "radius": 0.95}])
records = kx.run_grid(kx.train_sequence_model, configs, seeds=range(3),
                      path="results/adding.jsonl", name="adding")
```

Runs go seed by seed (every configuration with seed 0, then with seed 1,
...), so a sweep cut short early still has one run of every setting.
"""

import datetime
import importlib.metadata
import itertools
import os
import platform
import subprocess
import sys
import time
import traceback

import keras

from keras_residual import _validation as check
from keras_residual.experiments.results import ResultsFile
from keras_residual.experiments.results import canonical
from keras_residual.experiments.results import run_key


def grid(base, **axes):
    """Every combination of `axes` merged into `base`, in order (last axis fastest).

    Args:
        base: a dict, the settings all configurations share.
        **axes: key -> list of values; a value that is a dict whose keys
            start with `"+"` is merged into the configuration instead
            (`{"+model": "lstm", "+units": 64}` sets two keys at once).

    Returns:
        A list of dicts.

    Example:

    >>> from keras_residual.experiments import grid
    >>> [c["r"] for c in grid({"units": 8}, r=[0.9, 1.0])]
    [0.9, 1.0]
    >>> grid({}, model=[{"+model": "lstm", "+units": 4}])
    [{'model': 'lstm', 'units': 4}]
    """
    if not isinstance(base, dict):
        raise check.ArgumentTypeError(
            f"Argument `base` must be a dict; received base={base!r} of type "
            f"{type(base).__name__}."
        )
    names = list(axes)
    for name in names:
        if isinstance(axes[name], (str, bytes, dict)) or not hasattr(axes[name], "__iter__"):
            raise check.ArgumentTypeError(
                f"Argument `{name}` must be a list of values; received {name}={axes[name]!r}."
            )
    configs = []
    for values in itertools.product(*(list(axes[n]) for n in names)):
        config = dict(base)
        for name, value in zip(names, values):
            if isinstance(value, dict) and value and all(k.startswith("+") for k in value):
                config.update({k[1:]: v for k, v in value.items()})
            else:
                config[name] = value
        configs.append(config)
    return configs


def environment():
    """Backend, package versions, machine: stored with every record."""
    versions = {}
    for name in ("keras", "keras-residual", "jax", "tensorflow", "torch", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "backend": keras.backend.backend(),
        "versions": versions,
        "git": _git_state(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def _git_state():
    """`"<commit>"` or `"<commit>+dirty"` of the library's checkout, else `None`."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10)
        if commit.returncode:
            return None
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty else "")


def format_seconds(seconds):
    """`"45 s"`, `"12 min"`, `"3.4 h"`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plan(configs, seeds, path, estimate=None):
    """`(pending, done, seconds)`: the (config, seed) pairs still to run in
    run order, the number already in the results file, and the estimated
    seconds of the pending ones (`estimate(config)` per run, refined by the
    mean wall time of finished runs of the same configuration)."""
    records = ResultsFile(path).records()
    finished = {r["key"] for r in records}
    measured = {}
    for r in records:
        measured.setdefault(canonical(r["config"]), []).append(r.get("wall_seconds", 0.0))
    pending, seconds = [], 0.0
    for seed in seeds:
        for config in configs:
            if run_key(config, seed) in finished:
                continue
            pending.append((config, seed))
            times = measured.get(canonical(config))
            if times:
                seconds += sum(times) / len(times)
            elif estimate is not None:
                seconds += estimate(config)
    done = len(configs) * len(seeds) - len(pending)
    return pending, done, seconds


def run_grid(run, configs, seeds, path, name=None, describe=None, estimate=None, verbose=1,
             max_runs=None):
    """Run every (configuration, seed) not yet in the results file.

    Each finished run is appended to `path` as one JSON line: `key`,
    `experiment`, `config`, `seed`, what `run(config, seed)` returned under
    `result`, `wall_seconds`, `finished` (UTC time) and `environment()`. A run
    that raises is reported and not recorded (a rerun tries it again); the
    others go on.

    Args:
        run: function `(config, seed) -> dict` of JSON values.
        configs: list of configuration dicts (JSON values).
        seeds: iterable of non-negative integer seeds.
        path: the JSON-lines results file.
        name: the experiment's name, stored in each record.
        describe: function `config -> str` for the progress lines.
        estimate: function `config -> seconds`, for the time estimate.
        verbose: 0 silent, 1 a plan line, one line per run and a Keras
            `Progbar` over the grid.
        max_runs: stop after this many runs (`None`: all).

    Returns:
        `{"records": [...], "ran": int, "failed": [(config, seed, error)]}`,
        the records of every (configuration, seed) of the grid found in the
        file after the sweep.
    """
    if not callable(run):
        raise check.ArgumentTypeError(f"Argument `run` must be callable; received run={run!r}.")
    seeds = [check.integer("seed", s, minimum=0) for s in seeds]
    max_runs = check.positive_int("max_runs", max_runs, allow_none=True)
    results = ResultsFile(path)
    describe = describe or canonical
    pending, done, seconds = plan(configs, seeds, path, estimate)
    total = len(configs) * len(seeds)
    if verbose:
        print(f"{name or 'grid'}: {len(configs)} configurations x {len(seeds)} seeds = {total} "
              f"runs, {done} already in {path}, {len(pending)} to run"
              + (f", about {format_seconds(seconds)}" if pending and seconds else ""),
              flush=True)
    bar = keras.utils.Progbar(total, unit_name="run") if verbose and pending else None
    if bar is not None and done:
        bar.update(done)
    env, failed, ran = environment(), [], 0
    for config, seed in pending:
        if max_runs is not None and ran >= max_runs:
            break
        if verbose:
            print(f"\n[{done + 1}/{total}] {name or 'run'}: {describe(config)}, seed {seed}",
                  flush=True)
        start = time.perf_counter()
        try:
            result = run(config, seed)
        except Exception as error:  # noqa: BLE001 - the sweep goes on; nothing is recorded
            failed.append((config, seed, f"{type(error).__name__}: {error}"))
            print(f"  FAILED (not recorded, a rerun tries again): {type(error).__name__}: "
                  f"{error}", file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)
            continue
        wall = time.perf_counter() - start
        results.append({
            "key": run_key(config, seed), "experiment": name, "config": config, "seed": seed,
            "result": result, "wall_seconds": round(wall, 2),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "environment": env,
        })
        ran += 1
        done += 1
        if bar is not None:
            bar.update(done, values=[("run_seconds", wall)])
    keys = {run_key(c, s) for c in configs for s in seeds}
    records = [r for r in results.records() if r["key"] in keys]
    if verbose:
        print(f"\n{name or 'grid'}: {len(records)}/{total} runs in {path}"
              + (f", {len(failed)} failed" if failed else ""), flush=True)
    return {"records": records, "ran": ran, "failed": failed}
