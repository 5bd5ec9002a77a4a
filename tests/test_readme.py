"""The README's Python examples run, under the current backend.

Each ```python block of README.md runs in order in one namespace (a block
may use what an earlier one defined, as a reader would), after a preamble
that defines the data the prose names: `x_train`/`y_train` (a small
pixel-wise sequence task, 784 steps of 1 feature, 10 classes) and `images`
(a batch of 32x32x64 feature maps). A block that sets `KERAS_BACKEND` (a
fresh process's recipe) is checked for syntax only. Files the examples
write go to a temporary directory.
"""

import os
import re

import keras
import numpy as np
import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks():
    with open(README) as f:
        text = f.read()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def test_readme_has_examples():
    assert len(blocks()) >= 5


def test_readme_examples_run(tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    rng = np.random.default_rng(0)
    namespace = {
        "x_train": rng.uniform(size=(64, 784, 1)).astype("float32"),
        "y_train": rng.integers(0, 10, size=(64,)),
        "images": rng.normal(size=(8, 32, 32, 64)).astype("float32"),
    }
    ran = 0
    for line, code in blocks():
        compiled = compile(code, f"README.md:{line}", "exec")
        if "KERAS_BACKEND" in code:
            continue  # a recipe for a fresh process: compiled (syntax) only
        try:
            exec(compiled, namespace)
        except Exception as error:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"README.md block at line {line} failed under "
                        f"{keras.backend.backend()}: {type(error).__name__}: {error}")
        ran += 1
    assert ran >= 5
