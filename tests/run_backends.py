"""Run the test suite under tensorflow, jax and torch, one process each.

Keras reads `KERAS_BACKEND` once, at import, so each backend needs its own
pytest process. Usage (extra arguments go to pytest):

    python tests/run_backends.py                  # all three backends
    python tests/run_backends.py --backends jax   # a subset
    python tests/run_backends.py -k wcrnn         # pytest options pass through
    python tests/run_backends.py tests/layers     # so do test paths

Prints each backend's pytest summary line at the end, with the tests it
skipped by design (a test marked `only_backend(...)` in another backend's
pass, counted by reason), and exits non-zero if any backend fails, runs no
test (pytest's exit code 5), skips a test for any other reason (a missing
package, an `importorskip`, a `skipif` without the marker), or is not
installed.
"""

import argparse
import collections
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time

BACKENDS = ("tensorflow", "jax", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# pytest's closing line, with or without the `=====` padding (`-q` drops it).
SUMMARY = re.compile(
    r"^(?:=+ )?((?:\d+ \w+(?:, )?)+ in [\d.]+s.*?|no tests ran.*?)(?: =+)?$"
)


# `tests/conftest.py` writes the session's skips where this variable says.
SKIP_REPORT = "KERAS_RESIDUAL_SKIP_REPORT"


def run_backend(backend, pytest_args):
    """Runs pytest under one backend; returns (exit code, summary line,
    seconds, skips), skips being conftest's report (None if none came)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "skips.json")
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env[SKIP_REPORT] = report
        code, summary, elapsed = _pytest(backend, pytest_args, env)
        skips = None
        if os.path.exists(report):
            with open(report) as f:
                skips = json.load(f)
    return code, summary, elapsed, skips


def _pytest(backend, pytest_args, env):
    # The whole suite unless the arguments name test paths themselves.
    paths = [a for a in pytest_args if not a.startswith("-") and os.path.exists(a.split("::")[0])]
    # The slowest tests are listed, to keep the run inside CI's time budget.
    durations = [] if any(a.startswith("--durations") for a in pytest_args) else ["--durations=8"]
    command = [sys.executable, "-m", "pytest", *([] if paths else [HERE]), *durations, *pytest_args]
    print(f"\n##### KERAS_BACKEND={backend}: {' '.join(command)}", flush=True)
    start = time.time()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    summary = None
    for line in proc.stdout:
        sys.stdout.write(line)
        match = SUMMARY.match(line.strip())
        if match:
            summary = match.group(1)
    proc.wait()
    return proc.returncode, summary or "no pytest summary line", time.time() - start


def describe_skips(skips):
    """Status problem (or None) and the lines that list the skips."""
    if skips is None:
        return "no skip report from tests/conftest.py", []
    lines = []
    by_design = collections.Counter(s["reason"].split(": ", 1)[-1] for s in skips["by_design"])
    if by_design:
        lines.append(f"skipped by design: {sum(by_design.values())}")
        lines += [f"  {n} x {reason}" for reason, n in sorted(by_design.items())]
    if skips["other"]:
        lines.append(f"SKIPPED FOR ANOTHER REASON: {len(skips['other'])}")
        lines += [f"  {s['nodeid']}: {s['reason']}" for s in skips["other"]]
        return f"{len(skips['other'])} skipped, not by design", lines
    return None, lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated backends (default: all three)",
    )
    args, pytest_args = parser.parse_known_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in BACKENDS:
            parser.error(f"--backends: unknown backend {b!r}; allowed: {BACKENDS}")

    results = {}
    for backend in backends:
        if importlib.util.find_spec(backend) is None:
            no_skips = {"by_design": [], "other": []}
            results[backend] = (1, f"NOT INSTALLED: pip install '.[{backend}]'", 0.0, no_skips)
            continue
        results[backend] = run_backend(backend, pytest_args or ["-q"])

    print("\n##### summary", flush=True)
    failed = False
    for backend, (code, summary, elapsed, skips) in results.items():
        problems = [] if code == 0 else [f"exit {code}"]
        if code == 5:
            problems = ["no tests ran"]
        skip_problem, skip_lines = describe_skips(skips)
        if skip_problem:
            problems.append(skip_problem)
        status = f"FAILED ({'; '.join(problems)})" if problems else "ok"
        failed |= bool(problems)
        print(f"{backend:>10}: {summary}  [{elapsed:.0f}s, {status}]", flush=True)
        for line in skip_lines:
            print(f"{'':>12}{line}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
