"""Results files: one JSON line per finished run, keyed by configuration and seed.

A sweep appends each run's record as soon as the run ends (one line,
flushed and synced), so an interrupted sweep loses at most the run in
progress; rerun, it reads the file, skips every (configuration, seed) already
there and runs the rest. A line cut short by the interruption is ignored
(with a warning) and its run done again.
"""

import hashlib
import json
import math
import os
import warnings

import numpy as np

from keras_residual import _validation as check


def _plain(value):
    """`value` with NumPy scalars and arrays as Python numbers and lists,
    and non-finite floats as `None` (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def canonical(config):
    """The configuration as canonical JSON (sorted keys, plain numbers)."""
    if not isinstance(config, dict):
        raise check.ArgumentTypeError(
            f"Argument `config` must be a dict of JSON values; received config={config!r} "
            f"of type {type(config).__name__}."
        )
    return json.dumps(_plain(config), sort_keys=True, separators=(",", ":"))


def run_key(config, seed):
    """The key of one run: a hash of the canonical configuration and the seed.

    Two configurations that are equal as JSON (whatever their key order, and
    with NumPy numbers as Python ones) give the same key.

    Example:

    >>> from keras_residual.experiments import run_key
    >>> run_key({"radius": 1.0, "units": 64}, 0) == run_key({"units": 64, "radius": 1.0}, 0)
    True
    """
    seed = check.integer("seed", seed, minimum=0)
    text = f"{canonical(config)}|seed={seed}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class ResultsFile:
    """A JSON-lines file of run records, read for resuming and appended to.

    Args:
        path: the file; its folder is created on the first append.

    Example:

    ```python
    results = kr.experiments.ResultsFile("experiments/results/cpu/adding.jsonl")
    done = results.keys()               # runs already finished
    results.append({"key": ..., "config": ..., "seed": 0, ...})
    ```
    """

    def __init__(self, path):
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        self.path = check.string("path", path)

    def records(self):
        """Every complete record in the file, in order (a later record with
        the same key replaces an earlier one)."""
        if not os.path.exists(self.path):
            return []
        by_key = {}
        with open(self.path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    warnings.warn(
                        f"{self.path}:{number}: an incomplete line (a run interrupted while "
                        "being written?) is ignored; that run will be done again.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                if isinstance(record, dict) and "key" in record:
                    by_key[record["key"]] = record
        return list(by_key.values())

    def keys(self):
        """The keys of the finished runs."""
        return {r["key"] for r in self.records()}

    def append(self, record):
        """Append one record (a dict with a `"key"`) as one line, synced to disk."""
        if not isinstance(record, dict) or "key" not in record:
            raise ValueError(
                "Argument `record` must be a dict with a 'key' entry (see run_key); "
                f"received record={record!r}."
            )
        line = json.dumps(_plain(record), sort_keys=True)
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        with open(self.path, "a+") as f:
            # A line cut short by an earlier interruption must not swallow this one.
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    f.write("\n")
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def __repr__(self):
        return f"ResultsFile({self.path!r})"
