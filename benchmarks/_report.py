"""Shared pieces of the benchmarks: machine description and BENCHMARKS.md sections."""

import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS_MD = os.path.join(ROOT, "BENCHMARKS.md")


def machine():
    """One line: CPU, cores, Python and the installed backend versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = []
    for name in ("keras", "tensorflow", "jax", "torch", "numpy"):
        try:
            out = subprocess.run(
                [sys.executable, "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            versions.append(f"{name} {out}")
        except subprocess.CalledProcessError:
            pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}; " + ", ".join(versions)


def update_section(key, text, path=BENCHMARKS_MD):
    """Replace the text between `<!-- begin KEY -->` and `<!-- end KEY -->` in
    BENCHMARKS.md (appending the section when it is missing)."""
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    content = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(content):
        content = pattern.sub(lambda _: block, content)
    else:
        content = content.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(content)


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def median_ms(step, steps, warmup, after_warmup=None, min_seconds=0.0):
    """Median wall-clock milliseconds of `step()` over at least `steps` calls
    (more, up to 50, until `min_seconds` of timed calls: a short step gets
    enough samples for its median to stand above this machine's noise),
    after `warmup` untimed calls (compilation); `after_warmup()` runs between
    them (e.g. to read the memory before the timed calls)."""
    import time

    for _ in range(warmup):
        step()
    if after_warmup is not None:
        after_warmup()
    times = []
    while len(times) < steps or (sum(times) < min_seconds and len(times) < 50):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2]
