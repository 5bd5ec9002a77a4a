"""Run every benchmark and rewrite BENCHMARKS.md from this one run.

Runs, one after the other (each benchmark spawns one process per backend):

- `rnn_speed.py`: WCRNN vs keras SimpleRNN/LSTM (and torch.nn.RNN, a jitted
  lax.scan) training-step time;
- `lyapunov_speed.py`: `lyapunov_spectrum` against the float64 NumPy
  reference (WCRNN, LSTM, GRU, SimpleRNN; and the Elman net of the peer
  comparison), and (`--callback`) what `LyapunovCallback` adds to an epoch;
- `flossing_speed.py`: a gradient-flossing step against a plain training
  step, for several k and T;
- `pnnh_speed.py`: PNNH vs residual vs plain block stacks, and the cost of
  `ReLUSurvivalCallback`;
- `applications_speed.py`: `kr.applications` ResNets and ViT-Tiny in each
  connection.

Each benchmark prints its tables with ratios against a baseline measured in
the same run; progress lines (starting with `#`) are dropped. BENCHMARKS.md
is rewritten with a section per benchmark (the exact command, its output),
the machine and package versions, and one PNG bar chart per table with a
ratio column (`benchmarks/figures/<section>_<n>.png`).

Usage:

    python benchmarks/run_all.py                 # full run (about 30-45 min on 2 CPU cores)
    python benchmarks/run_all.py --quick         # smaller sizes (a few minutes)
    python benchmarks/run_all.py --only pnnh_speed,applications_speed
    python benchmarks/run_all.py --output /tmp/B.md   # leave BENCHMARKS.md alone

Run it on a quiet machine: the figures of a loaded machine are noise (torch
especially, whose intra-op threads spin against other load).
"""

import argparse
import datetime
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _report  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")

# key -> (title, arguments, quick arguments, per_backend)
# `per_backend`: the script measures the current KERAS_BACKEND only, so it is
# run once per backend; otherwise it spawns its own per-backend processes.
BENCHMARKS = {
    "rnn_speed": (
        "Recurrent layers: training and inference step time",
        ["rnn_speed.py", "--lengths", "784,100", "--layers", "WCRNN,RNN(WCRNNCell),SimpleRNN,native",
         "--residuals", "identity,diagonal,rotational,dense", "--modes", "train,infer"],
        ["rnn_speed.py", "--lengths", "100", "--steps", "3", "--warmup", "1",
         "--min-seconds", "0", "--layers", "WCRNN,SimpleRNN,native"],
        False,
    ),
    "lyapunov_speed": (
        "Lyapunov spectrum: speed and agreement with the float64 NumPy reference",
        ["lyapunov_speed.py", "--backend", "all"],
        ["lyapunov_speed.py", "--backend", "all", "--steps", "200", "--units", "64",
         "--no-float64"],
        False,
    ),
    "lyapunov_elman": (
        "Lyapunov spectrum of an Elman net (the peer comparison's configuration)",
        ["lyapunov_speed.py", "--backend", "all", "--models", "simple_rnn", "--batch", "8",
         "--no-float64", "--qr-intervals", "1,auto"],
        ["lyapunov_speed.py", "--backend", "all", "--models", "simple_rnn", "--batch", "8",
         "--no-float64", "--qr-intervals", "1,auto", "--steps", "100"],
        False,
    ),
    "lyapunov_callback": (
        "LyapunovCallback: cost per epoch",
        ["lyapunov_speed.py", "--callback", "--backend", "all"],
        ["lyapunov_speed.py", "--callback", "--backend", "all", "--epochs", "1"],
        False,
    ),
    "flossing_speed": (
        "Gradient flossing: a flossing step against a plain training step",
        ["flossing_speed.py", "--backend", "all"],
        ["flossing_speed.py", "--backend", "all", "--ks", "1", "--lengths", "20",
         "--steps", "2", "--warmup", "1", "--models", "simple_rnn"],
        False,
    ),
    "pnnh_speed": (
        "PNNH, residual and plain block stacks: size, throughput, survival-callback cost",
        ["pnnh_speed.py"],
        ["pnnh_speed.py", "--repeats", "2", "--steps", "3"],
        True,
    ),
    "applications_speed": (
        "kr.applications: parameters and training throughput per connection",
        ["applications_speed.py", "--steps", "2", "--repeats", "2"],
        ["applications_speed.py", "--quick"],
        False,
    ),
}


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {list(BENCHMARKS)}")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--output", default=_report.BENCHMARKS_MD,
                        help="the Markdown file to write (default: BENCHMARKS.md)")
    parser.add_argument("--figures", default=os.path.join(HERE, "figures"),
                        help="folder of the PNG charts")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per benchmark run")
    return parser.parse_args(argv)


def _backend_arguments(script_args, backends):
    """Restrict a benchmark to `backends` through its own option."""
    script = script_args[0]
    if script in ("rnn_speed.py", "applications_speed.py"):
        return script_args + ["--backends", ",".join(backends)]
    return script_args


def report_lines(output):
    """The report part of a benchmark's stdout: no progress (`#`) or `RESULT` lines,
    no `###` headings (the section has its own), blank runs collapsed."""
    kept = []
    for line in output.splitlines():
        if line.startswith(("#", "RESULT ")):
            continue
        if not line.strip() and (not kept or not kept[-1].strip()):
            continue
        kept.append(line.rstrip())
    return "\n".join(kept).strip()


def tables(text):
    """Markdown tables in `text`, as (header, rows) of cell strings."""
    found, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            if len(block) > 2:
                found.append((block[0], block[2:]))
            block = []
    return found


def _number(cell):
    try:
        return float(cell.replace(",", "").rstrip("x%"))
    except ValueError:
        return None


def plot_table(header, rows, path, title):
    """A horizontal bar chart of the table's first ratio column (`÷ ...` or `x ...`);
    returns False when the table has none."""
    ratio = next((i for i, h in enumerate(header) if h.startswith(("÷", "x "))), None)
    if ratio is None:
        return False
    labels, values = [], []
    for row in rows:
        value = _number(row[ratio]) if ratio < len(row) else None
        if value is None:
            continue
        label_cells = [c for c in row[:ratio] if _number(c) is None or c == row[0]]
        labels.append(" · ".join(label_cells[:4]))
        values.append(value)
    if not values:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.3 * len(values) + 1.2))
    ax.barh(range(len(values)), values, color="tab:blue")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(header[ratio])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run_benchmark(key, args):
    title, full, quick, per_backend = BENCHMARKS[key]
    script_args = list(quick if args.quick else full)
    backends = args.backends.split(",")
    runs = []
    if per_backend:
        for backend in backends:
            runs.append((backend, script_args))
    else:
        runs.append((None, _backend_arguments(script_args, backends)))
    parts, failed, seconds = [], False, 0.0
    for backend, run_args in runs:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        command = "python benchmarks/" + " ".join(run_args)
        if backend is not None:
            env["KERAS_BACKEND"] = backend
            command = f"KERAS_BACKEND={backend} " + command
        print(f"## {key}: {command}", flush=True)
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, os.path.join(HERE, run_args[0]), *run_args[1:]],
                env=env, capture_output=True, text=True, timeout=args.timeout,
            )
            output, code = proc.stdout, proc.returncode
            if code != 0:
                output += "\n" + proc.stderr[-3000:]
        except subprocess.TimeoutExpired as error:
            output, code = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) \
                else (error.stdout or ""), "timeout"
        seconds += time.perf_counter() - start
        print(output, flush=True)
        report = report_lines(output)
        if code != 0:
            failed = True
            report += f"\n\n**This run failed (exit {code}).**"
        parts.append(f"`{command}`\n\n{report}")
    return title, parts, failed, seconds


def main(argv=None):
    args = _parse(argv)
    keys = args.only.split(",")
    unknown = [k for k in keys if k not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; allowed: {list(BENCHMARKS)}")
    os.makedirs(args.figures, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections, any_failed = {}, False
    machine = _report.machine()
    for key in keys:
        title, parts, failed, seconds = run_benchmark(key, args)
        any_failed |= failed
        body = "\n\n".join(parts)
        charts = []
        for i, (header, rows) in enumerate(tables(body)):
            name = f"{key}_{i + 1}.png"
            if plot_table(header, rows, os.path.join(args.figures, name), f"{title} ({i + 1})"):
                rel = os.path.relpath(os.path.join(args.figures, name),
                                      os.path.dirname(os.path.abspath(args.output)))
                charts.append(f"![{key} {i + 1}]({rel})")
        text = f"## {title}\n\n{body}\n"
        if charts:
            text += "\n" + "\n".join(charts) + "\n"
        mode = "quick mode (`--quick`: reduced sizes)" if args.quick else "full sizes"
        text += (f"\n(Measured {started}, {mode}, {seconds / 60:.1f} min, "
                 f"on {machine}.)\n")
        sections[key] = text
    # Sections of benchmarks not run now (and the GPU section, written from a
    # GPU machine) stay as they are; each carries its own date and machine.
    existing = open(args.output).read() if os.path.exists(args.output) else ""
    header = (
        "# Benchmarks\n\n"
        "Written by `python benchmarks/run_all.py` (all of it, or `--only` some "
        "sections); each section names the command that produced it and the run "
        "it comes from (date, machine), and every ratio is against a baseline measured "
        "in the same run (same backend and process unless the column says otherwise).\n\n"
        "Speed depends on the machine and its load: re-run `python benchmarks/run_all.py` "
        "on yours, or a section's command alone to re-measure one benchmark.\n"
    )
    body = existing[existing.index("<!-- begin "):] if "<!-- begin " in existing else ""
    with open(args.output, "w") as f:
        f.write(header + "\n" + body)
    for key in BENCHMARKS:
        if key in sections:
            _report.update_section(key, sections[key], path=args.output)
    print(f"wrote {args.output}" + (" (some benchmarks failed)" if any_failed else ""))
    return 1 if any_failed else 0


if __name__ == "__main__":
    sys.exit(main())
