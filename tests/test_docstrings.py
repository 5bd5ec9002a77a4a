"""Every `>>>` example in a public docstring runs, under the current backend.

The collector walks `keras_residual` and `keras_residual.applications` (the
top-level `applications/` folder), skipping private (`_`-prefixed) modules and
objects, and finds the examples with `doctest.DocTestFinder`. Each docstring
is one test, named by the object's qualified name, run with only `np`,
`keras`, `ops` (`keras.ops`) and `kr` (`keras_residual`) defined, so an
example has to define its own data. Outputs are compared with ELLIPSIS and
NORMALIZE_WHITESPACE; examples print rounded values, shapes and booleans so
that the same text holds on every backend and CPU.

Run one docstring: `pytest tests/test_docstrings.py -k WCRNNCell`.
"""

import ast
import doctest
import importlib
import inspect
import os
import pkgutil

os.environ.setdefault("MPLBACKEND", "Agg")  # plotting examples draw off screen

import keras
import numpy as np
import pytest

import keras_residual as kr

PACKAGES = ("keras_residual", "keras_residual.applications")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Fewer would mean the walk lost modules (at the time of writing: 74 docstrings).
MIN_EXAMPLES = 60
# Public classes of these modules must each show an example (Keras style).
MUST_HAVE_EXAMPLES = (kr.layers, kr.residuals, kr.callbacks, kr.initializers)


def _private(dotted):
    return any(part.startswith("_") for part in dotted.split("."))


def public_modules():
    """The public modules of the packages, imported, in walk order."""
    modules = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules[name] = package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if not _private(info.name):
                modules[info.name] = importlib.import_module(info.name)
    return list(modules.values())


def collect():
    """`{qualified name: doctest.DocTest}` of every public docstring with examples."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for module in public_modules():
        for test in finder.find(module, globs={}):
            if test.examples and not _private(test.name) and test.name not in tests:
                tests[test.name] = test
    return tests


TESTS = collect()


def _globals():
    # `__name__` as in an interactive session (and as doctest sets it):
    # functions an example defines get a `__module__`, which tf.function needs.
    return {"__name__": "__main__", "np": np, "keras": keras, "ops": keras.ops, "kr": kr}


@pytest.mark.parametrize("name", sorted(TESTS))
def test_docstring_example(name, _seeded):
    test = TESTS[name]
    test.globs = _globals()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    try:
        result = runner.run(test, out=report.append, clear_globs=True)
    finally:
        if "matplotlib.pyplot" in __import__("sys").modules:
            import matplotlib.pyplot as plt

            plt.close("all")
    if result.failed:
        where = f"{test.filename}:{test.lineno}" if test.lineno is not None else test.filename
        pytest.fail(
            f"{result.failed} of {result.attempted} examples of {name} ({where}) failed "
            f"under {keras.backend.backend()}:\n" + "".join(report),
            pytrace=False,
        )


def test_collector_found_the_examples():
    assert len(TESTS) >= MIN_EXAMPLES, sorted(TESTS)
    for area in (
        "keras_residual.layers.",
        "keras_residual.residuals.",
        "keras_residual.callbacks.",
        "keras_residual.dynamics.",
        "keras_residual.initializers.",
        "keras_residual.datasets.",
        "keras_residual.applications.",
    ):
        assert any(name.startswith(area) for name in TESTS), f"no example under {area}"


def _docstrings_with_examples(module):
    """Qualified names of the public docstrings with `>>>` in a module's source
    (module, classes, functions, methods), read independently of doctest."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return set()
    found = set()

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}.{child.name}"
                if _private(child.name):
                    continue
                doc = ast.get_docstring(child, clean=False)
                if doc and ">>>" in doc:
                    found.add(name)
                if isinstance(child, ast.ClassDef):
                    visit(child, name)

    tree = ast.parse(source)
    doc = ast.get_docstring(tree, clean=False)
    if doc and ">>>" in doc:
        found.add(module.__name__)
    visit(tree, module.__name__)
    return found


def test_collector_misses_no_docstring():
    expected = set()
    for module in public_modules():
        expected |= _docstrings_with_examples(module)
    missing = sorted(expected - set(TESTS))
    assert not missing, f"docstrings with >>> examples the collector missed: {missing}"


def _public_classes(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj) and obj.__module__.startswith("keras_residual"):
            yield f"{module.__name__}.{name}", obj


def test_every_public_class_has_an_example():
    lacking = sorted(
        name
        for module in MUST_HAVE_EXAMPLES
        for name, cls in _public_classes(module)
        if ">>>" not in (cls.__dict__.get("__doc__") or "")
    )
    assert not lacking, f"public classes whose docstring has no example: {lacking}"
