"""Run the test suite under tensorflow, jax and torch, one process each.

Keras reads `KERAS_BACKEND` once, at import, so each backend needs its own
pytest process. Usage (extra arguments go to pytest):

    python tests/run_backends.py                  # all three backends
    python tests/run_backends.py --backends jax   # a subset
    python tests/run_backends.py -k wcrnn         # pytest options pass through
    python tests/run_backends.py tests/layers     # so do test paths

Prints each backend's pytest summary line at the end and exits non-zero if
any backend fails, runs no test (pytest's exit code 5), or is not installed.
"""

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# pytest's closing line, with or without the `=====` padding (`-q` drops it).
SUMMARY = re.compile(
    r"^(?:=+ )?((?:\d+ \w+(?:, )?)+ in [\d.]+s.*?|no tests ran.*?)(?: =+)?$"
)


def run_backend(backend, pytest_args):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    # The whole suite unless the arguments name test paths themselves.
    paths = [a for a in pytest_args if not a.startswith("-") and os.path.exists(a.split("::")[0])]
    command = [sys.executable, "-m", "pytest", *([] if paths else [HERE]), *pytest_args]
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
    elapsed = time.time() - start
    return proc.returncode, summary or "no pytest summary line", elapsed


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
            results[backend] = (1, f"NOT INSTALLED: pip install '.[{backend}]'", 0.0)
            continue
        results[backend] = run_backend(backend, pytest_args or ["-q"])

    print("\n##### summary", flush=True)
    failed = False
    for backend, (code, summary, elapsed) in results.items():
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        if code == 5:
            status = "FAILED (no tests ran)"
        failed |= code != 0
        print(f"{backend:>10}: {summary}  [{elapsed:.0f}s, {status}]", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
