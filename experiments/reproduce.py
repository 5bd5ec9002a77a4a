"""Run the papers' experiments with seeds and rewrite REPRODUCTION.md from their results.

    python experiments/reproduce.py list                      # experiments, runs, estimated time
    python experiments/reproduce.py run adding                # one experiment, CPU budget, resumes
    python experiments/reproduce.py run adding --dry-run      # what it would run, how long
    python experiments/reproduce.py run --all                 # every experiment, in ORDER
    python experiments/reproduce.py run --all --paper         # the papers' sizes (a GPU machine)
    python experiments/reproduce.py run --all --smoke --results /tmp/smoke   # seconds: CI
    python experiments/reproduce.py report                    # REPRODUCTION.md from the results

Results are JSON lines, one per finished run, in `experiments/results/<budget>/<name>.jsonl`
(committed for the CPU budget); a rerun skips what is there, so a sweep can be stopped
(kill its process) and resumed at any time. `run --all` runs each experiment in its own
process on the backend the experiment names (jax for the recurrent nets, tensorflow for
the convolutional ones), one after the other, and rewrites the report after each.
`experiments/run_sweeps.sh` starts it in the background.
"""

import argparse
import datetime
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import catalog  # noqa: E402

RUNS = {
    "sequence": "train_sequence_model",
    "flossing_copy": "train_flossing_copy",
    "flossing_xor": "train_flossing_xor",
    "images": "train_image_classifier",
}

# claim -> (section, title, what the paper says)
CLAIMS = {
    "edge_of_chaos": (
        "Paper 1: weakly coupled residual RNNs",
        "Edge of chaos: performance against the homogeneous radius",
        "Residual connections that put the network near the edge of chaos (critical, "
        "|eig R| = 1) give an effective inductive bias: score and convergence peak near "
        "log r = 0, between sub-critical (fading) and super-critical (exploding) memory."),
    "adding": (
        "Paper 1: weakly coupled residual RNNs",
        "Adding problem (long memory)",
        "WCRNNs learn long-memory tasks such as the adding problem; here: until the test MSE "
        "is at most 0.01 (6 % of the 0.167 of predicting the mean), with SimpleRNN and LSTM "
        "as references."),
    "frequency": (
        "Paper 1: weakly coupled residual RNNs",
        "Characteristic frequency: rotational residuals",
        "A rotational residual at the data's characteristic frequency (2π/28 for pixel-wise "
        "MNIST rows) lets the network capitalise on the data's spectrum; permuted MNIST, whose "
        "spectrum has no such peak, is the control."),
    "heterogeneity": (
        "Paper 1: weakly coupled residual RNNs",
        "Heterogeneous memory timescales",
        "Heterogeneous residual radii (a spread of memory timescales) beat one homogeneous "
        "timescale of the same mean."),
    "elman": (
        "Paper 1: weakly coupled residual RNNs",
        "Elman networks initialised as weakly coupled residual nets",
        "A SimpleRNN (Elman net) whose recurrent kernel starts at R + γ W0 "
        "(`kr.initializers.WeaklyCoupledResidual`) trains better, with the paper's optimiser "
        "(SGD with momentum), than with Keras' default orthogonal initialisation."),
    "flossing_copy": (
        "Gradient flossing (Engelken, NeurIPS 2023)",
        "Delayed copy: success rate with and without flossing",
        "Flossing the top Lyapunov exponents toward 0 before or during training raises the "
        "success rate on long time horizons."),
    "flossing_xor": (
        "Gradient flossing (Engelken, NeurIPS 2023)",
        "Delayed XOR at the reference code's settings",
        "On the delayed-XOR task of the reference code (80 units, T = 300, flossing 75 "
        "exponents toward 0, Adam 1e-3), flossing before (and during) training improves "
        "learning over plain training."),
    "pnnh_depth": (
        "Paper 2: the Plain Neural Net Hypothesis",
        "Dissipating inputs: plain, residual and PNNH nets at depth 20, 56, 110",
        "ReLU layers of deep plain nets let the input's information dissipate (low survival) "
        "and deep plain nets fail to train; residual connections, and PNNH's coder without "
        "any shortcut, keep survival up and the nets trainable."),
    "pnnh_matched": (
        "Paper 2: the Plain Neural Net Hypothesis",
        "PNNH at equal parameters and measured throughput",
        "PNNH nets reach accuracy on par with ResNets with fewer parameters (and, in the "
        "paper, higher throughput)."),
}


def results_dir(budget, override=None):
    return override or os.path.join(HERE, "results", budget)


def results_path(name, budget, override=None):
    return os.path.join(results_dir(budget, override), f"{name}.jsonl")


def describe_varying(configs):
    """`config -> str` naming the values that differ across the grid."""
    from keras_residual.experiments.results import canonical

    keys = sorted({k for c in configs for k in c})
    varying = [k for k in keys if len({canonical({"v": c.get(k)}) for c in configs}) > 1]

    def describe(config):
        parts = []
        for key in varying:
            value = config.get(key)
            if isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items() if k != "name"
                                 and not isinstance(v, dict)) or value.get("kind")
            parts.append(f"{key}={value}")
        return ", ".join(parts) or "the one configuration"

    return describe


def plan_experiment(name, budget, results=None):
    """`(configs, seeds, pending, done, seconds)` of one experiment."""
    from keras_residual.experiments import runner

    experiment = catalog.EXPERIMENTS[name]
    configs, seeds = experiment.grid(budget)
    pending, done, seconds = runner.plan(
        configs, seeds, results_path(name, budget, results),
        lambda c: catalog.estimate(name, c))
    return configs, seeds, pending, done, seconds


def print_plan(names, budget, results=None):
    from keras_residual.experiments import format_seconds

    total = 0.0
    print(f"budget {budget!r}; results in {results_dir(budget, results)}")
    print(f"{'experiment':24s} {'backend':10s} {'runs':>6s} {'done':>6s} {'to run':>7s} "
          f"{'estimate':>9s}  what")
    for name in names:
        e = catalog.EXPERIMENTS[name]
        configs, seeds, pending, done, seconds = plan_experiment(name, budget, results)
        total += seconds
        print(f"{name:24s} {e.backend:10s} {len(configs) * len(seeds):6d} {done:6d} "
              f"{len(pending):7d} {format_seconds(seconds):>9s}  {e.about}")
    print(f"total estimated time of the runs still to do: {format_seconds(total)} "
          "(2 CPU cores; a rough model from measured step times)", flush=True)
    return total


def run_experiment(name, budget, results=None, max_runs=None):
    import keras_residual.experiments as kx

    experiment = catalog.EXPERIMENTS[name]
    configs, seeds = experiment.grid(budget)
    return kx.run_grid(
        getattr(kx, RUNS[experiment.run]), configs, seeds,
        results_path(name, budget, results), name=name,
        describe=describe_varying(configs),
        estimate=lambda c: catalog.estimate(name, c), max_runs=max_runs)


def run_all(names, args):
    """Each experiment in its own process, on its backend, then the report."""
    failed = []
    for name in names:
        backend = args.backend or catalog.EXPERIMENTS[name].backend
        command = [sys.executable, os.path.abspath(__file__), "run", name,
                   "--budget", args.budget]
        if args.results:
            command += ["--results", args.results]
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        print(f"\n##### {stamp} KERAS_BACKEND={backend} {' '.join(command[1:])}", flush=True)
        env = dict(os.environ, KERAS_BACKEND=backend)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        code = subprocess.call(command, env=env)
        if code:
            failed.append(name)
            print(f"##### {name}: exit {code}", flush=True)
        if args.budget == "cpu" and not args.results:
            report(["report"])
    return failed


def report(argv):
    from report import write_report

    parser = argparse.ArgumentParser(prog="reproduce.py report")
    parser.add_argument("command")
    parser.add_argument("--budget", default="cpu", choices=catalog.BUDGETS)
    parser.add_argument("--results", default=None, help="folder of the results files")
    parser.add_argument("--output", default=os.path.join(ROOT, "REPRODUCTION.md"))
    parser.add_argument("--figures", default=None, help="folder of the figures")
    args = parser.parse_args(argv)
    figures = args.figures or os.path.join(
        HERE, "figures", *(() if args.budget == "cpu" else (args.budget,)))
    return write_report(args.budget, results_dir(args.budget, args.results), args.output,
                        figures)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "report":
        report(argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list", "run"])
    parser.add_argument("names", nargs="*", help=f"experiments, from {catalog.ORDER}")
    parser.add_argument("--all", action="store_true", help="every experiment, in order")
    parser.add_argument("--budget", default="cpu", choices=catalog.BUDGETS)
    parser.add_argument("--paper", dest="budget", action="store_const", const="paper",
                        help="the papers' sizes: full data, long training (for a GPU)")
    parser.add_argument("--smoke", dest="budget", action="store_const", const="smoke",
                        help="one tiny run per experiment (seconds)")
    parser.add_argument("--results", default=None,
                        help="folder of the results files (default experiments/results/<budget>)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan only")
    parser.add_argument("--in-process", action="store_true",
                        help="with --all: run every experiment here, on the current backend")
    parser.add_argument("--backend", default=None,
                        help="with --all: this backend for every experiment")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in catalog.EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiments {unknown}; allowed: {catalog.ORDER}")
    names = catalog.ORDER if (args.all or args.command == "list") and not args.names \
        else args.names
    if not names:
        parser.error("name experiments or pass --all")
    print_plan(names, args.budget, args.results)
    if args.command == "list" or args.dry_run:
        return 0
    if args.all and not args.in_process:
        failed = run_all(names, args)
        return 1 if failed else 0
    failures = 0
    for name in names:
        failures += len(run_experiment(name, args.budget, args.results, args.max_runs)["failed"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
