"""Residual sweep: the WCRNN paper's experiments on memory regimes, in small.

Trains one `kr.layers.WCRNN` per residual setting, all from the same seed (so
the settings differ in the residual alone), in three groups:

- **a** homogeneous radius: sub-critical, critical, super-critical
  (`Homogeneous(r)`, r = 0.9, 1.0, 1.02 by default);
- **b** rotation angle around the data's characteristic frequency
  (`Rotational(1.0, angle=f * angle0)`, f = 0.5, 1, 2, plus a far-off angle,
  pi/2 by default); `angle0` is `kr.dynamics.characteristic_frequency` of the
  task's training inputs (2*pi/28 for sequential MNIST; for permuted MNIST and
  the adding problem, whose spectra are flat, the peak is an arbitrary bin, so
  pass `--base-angle` to fix it instead);
- **c** homogeneous vs heterogeneous radii with the same mean
  (`Homogeneous(0.95)` vs `Heterogeneous(radius_range=(0.9, 1.0))`);

on pixel-wise sequential MNIST (`smnist`), permuted sequential MNIST
(`psmnist`), their Fashion-MNIST counterparts (`sfmnist`, `psfmnist`) and the
adding problem (`adding`). `--standardize` standardises the pixels with the
training set's mean and std (a critical residual R = I integrates the raw,
non-negative pixels' mean).

Each run is `keras_residual.experiments.train_sequence_model` (the same code
as the reproduction sweeps of `experiments/reproduce.py`), measuring the
validation curve of the **normalised score** s (0 at chance, 1 perfect:
(accuracy - 0.1) / 0.9, or 1 - MSE / (1/6) for the adding problem) once per
epoch, `auc` (the mean of s over the epochs: higher is faster and better),
`steps_to_target` (first step at which s >= `--threshold`), the test score,
and the largest Lyapunov exponent at initialisation and after training.

Runs are appended to `<output-dir>/runs.jsonl` as they finish and are not
repeated when the command is run again (delete the file, or use another
`--output-dir`, to start over). Saves `residual_sweep.png` and
`summary.json`, and prints a results table. For seeds and statistics, see
`experiments/reproduce.py` (several seeds per setting, mean ± std).

    python examples/residual_sweep.py                        # all groups, MNIST and adding
    python examples/residual_sweep.py --tasks smnist --groups a,b --epochs 20
    KERAS_BACKEND=jax python examples/residual_sweep.py --tasks sfmnist --standardize
    python examples/residual_sweep.py --smoke                # seconds: a check that it runs

Cost of the defaults (27 runs: 9 settings x 3 tasks; 64 units, 2,000
training sequences, 8 epochs, adding problem of length 200): about 10 minutes
with jax on 2 CPU cores.
"""

import argparse
import json
import math
import os

import keras

from keras_residual import experiments as kx
from keras_residual.experiments import tasks as kx_tasks

TASKS = kx_tasks.SEQUENCE_TASKS
GROUPS = ("a", "b", "c")
GROUP_TITLES = {
    "a": "(a) homogeneous radius",
    "b": "(b) rotation angle",
    "c": "(c) homogeneous vs heterogeneous",
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--tasks", type=kx.comma_list(str, TASKS), default="smnist,psmnist,adding",
                        help=f"comma-separated tasks from {', '.join(TASKS)}")
    parser.add_argument("--groups", type=kx.comma_list(str, GROUPS), default=",".join(GROUPS),
                        help="comma-separated groups: a (radius), b (angle), c (heterogeneity)")
    parser.add_argument("--units", type=int, default=64, help="state size N (even)")
    parser.add_argument("--coupling", type=float, default=0.02, help="weak-coupling constant gamma")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs per run")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam, clipnorm 1")
    parser.add_argument("--train-samples", type=int, default=2000, help="training sequences per task")
    parser.add_argument("--val-samples", type=int, default=500,
                        help="validation sequences, held out from the training set")
    parser.add_argument("--test-samples", type=int, default=1000, help="test sequences (at most)")
    parser.add_argument("--adding-length", type=int, default=200, help="steps of the adding problem")
    parser.add_argument("--standardize", action="store_true",
                        help="standardise the pixels with the training set's mean and std")
    parser.add_argument("--radii", type=kx.comma_list(float), default="0.9,1.0,1.02",
                        help="group a: homogeneous radii")
    parser.add_argument("--angle-factors", type=kx.comma_list(float), default="0.5,1,2",
                        help="group b: multiples of the characteristic frequency")
    parser.add_argument("--far-angle", type=float, default=math.pi / 2,
                        help="group b: an angle far from the characteristic frequency (<= 0: none)")
    parser.add_argument("--base-angle", type=float, default=None,
                        help="group b: fix angle0 (rad/step) instead of the data's characteristic frequency")
    parser.add_argument("--homogeneous-radius", type=float, default=0.95, help="group c: homogeneous radius")
    parser.add_argument("--radius-range", type=kx.comma_list(float), default="0.9,1.0",
                        help="group c: range of the heterogeneous radii")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="normalised validation score that counts as converged")
    parser.add_argument("--probe", type=int, default=8, help="test sequences driving the Lyapunov spectrum")
    parser.add_argument("--num-exponents", type=int, default=8, help="Lyapunov exponents computed")
    parser.add_argument("--warmup", type=int, default=100, help="Lyapunov warm-up steps")
    parser.add_argument("--source", default="auto", help="data source (see kr.datasets)")
    parser.add_argument("--output-dir", "--output", dest="output_dir", default="results/residual_sweep",
                        help="folder for runs.jsonl, the plot and summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run to check it works: 8 units, 32 sequences, 2 epochs, and "
                             "one run per task (the last setting of a group, the groups in turn: "
                             "smnist r=1.02, psmnist the far angle, adding heterogeneous)")
    args = parser.parse_args(argv)
    if args.units % 2:
        parser.error(f"--units must be even (rotational residual); received {args.units}")
    if len(args.radius_range) != 2:
        parser.error(f"--radius-range takes two numbers lo,hi; received {args.radius_range}")
    if args.smoke:
        args.units, args.epochs, args.batch_size = 8, 2, 32
        args.train_samples, args.val_samples, args.test_samples = 32, 16, 16
        args.adding_length, args.probe, args.num_exponents, args.warmup = 50, 2, 2, 10
    return args


def settings_for(group, args):
    """[(name, residual spec)] of one group (JSON, for `kx.make_residual`)."""
    if group == "a":
        return [(f"r={r:g}", {"kind": "homogeneous", "radius": r}) for r in args.radii]
    if group == "b":
        out = []
        for f in args.angle_factors:
            spec = {"kind": "rotational", "radius": 1.0, "angle_factor": f}
            if args.base_angle is not None:
                spec["angle"] = f * args.base_angle
            out.append((f"{f:g}x angle0", spec))
        if args.far_angle > 0:
            out.append((f"angle {args.far_angle:.3g}",
                        {"kind": "rotational", "radius": 1.0, "angle": args.far_angle}))
        return out
    lo, hi = args.radius_range
    return [
        (f"homog. r={args.homogeneous_radius:g}",
         {"kind": "homogeneous", "radius": args.homogeneous_radius}),
        (f"heterog. [{lo:g},{hi:g}]", {"kind": "heterogeneous", "radius_range": [lo, hi]}),
    ]


def config_for(task, spec, args):
    """The `kx.train_sequence_model` configuration of one run."""
    steps_per_epoch = max(1, args.train_samples // args.batch_size)
    target = (1 - args.threshold) * kx_tasks.ADDING_BASELINE_MSE if task == "adding" \
        else 0.1 + 0.9 * args.threshold
    return {
        "task": task, "source": args.source, "standardize": args.standardize,
        "train_samples": args.train_samples, "val_samples": args.val_samples,
        "test_samples": args.test_samples, "length": args.adding_length,
        "model": "wcrnn", "units": args.units, "coupling": args.coupling, "residual": spec,
        "optimizer": {"name": "adam", "learning_rate": args.learning_rate, "clipnorm": 1.0},
        "batch_size": args.batch_size, "steps": args.epochs * steps_per_epoch,
        "eval_every": steps_per_epoch, "target": target,
        "lyapunov": {"probe": args.probe, "num_exponents": args.num_exponents,
                     "warmup": args.warmup},
    }


def plan(args):
    """[(task, group, name, config)] in run order."""
    out = []
    for task in args.tasks:
        for group in args.groups:
            settings = settings_for(group, args)
            if args.smoke:  # one run per task: the last setting of the groups in turn
                if group != args.groups[args.tasks.index(task) % len(args.groups)]:
                    continue
                settings = settings[-1:]
            out += [(task, group, name, config_for(task, spec, args)) for name, spec in settings]
    return out


def plot(runs, tasks, groups, path):
    fig, axes = kx.plots.new_figure(len(tasks), len(groups) + 1)
    for row, task in enumerate(tasks):
        task_runs = [r for r in runs if r["task"] == task]
        for col, group in enumerate(groups):
            ax = axes[row][col]
            for run in (r for r in task_runs if r["group"] == group):
                kx.plots.plot_curves(ax, [run["record"]], y="val_score", label=run["name"])
            ax.axhline(0.0, color="0.6", lw=0.8, ls=":")
            ax.set_title(f"{task}: {GROUP_TITLES[group]}", fontsize=9)
            ax.set_xlabel("training step")
            ax.set_ylabel("normalised val. score")
            if ax.get_legend_handles_labels()[0]:  # --smoke leaves some panels empty
                ax.legend(fontsize=7)
        ax = axes[row][-1]
        names = [f"{r['group']}: {r['name']}" for r in task_runs]
        positions = list(range(len(task_runs)))
        nan = float("nan")
        ax.bar([p - 0.2 for p in positions],
               [nan if r["lyapunov_max_init"] is None else r["lyapunov_max_init"] for r in task_runs],
               width=0.4, label="init", color="0.7")
        ax.bar([p + 0.2 for p in positions],
               [nan if r["lyapunov_max_final"] is None else r["lyapunov_max_final"] for r in task_runs],
               width=0.4, label="trained", color="C3")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(positions)
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{task}: max Lyapunov exponent", fontsize=9)
        ax.legend(fontsize=7)
    kx.plots.save(fig, path)


def print_table(runs):
    fmt = kx.format_number
    print("\n| task | group | residual | test score | auc | steps to thr. "
          "| lambda_max init | lambda_max trained | max log abs eig R | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['task']} | {r['group']} | {r['name']} | {r['test_metric_name']} "
              f"{fmt(r['test_metric'], 4)} | {fmt(r['auc'])} | {fmt(r['steps_to_target'])} "
              f"| {fmt(r['lyapunov_max_init'], 4)} | {fmt(r['lyapunov_max_final'], 4)} "
              f"| {fmt(r['lyapunov_max_analytic'], 4)} | {r['train_seconds']:.1f} |")


def main(argv=None):
    args = parse_args(argv)
    runs = plan(args)
    os.makedirs(args.output_dir, exist_ok=True)
    print(f"backend {keras.backend.backend()}: {len(runs)} runs of {args.epochs} epochs")
    output = kx.run_grid(kx.train_sequence_model, [c for *_, c in runs], [args.seed],
                         os.path.join(args.output_dir, "runs.jsonl"), name="residual_sweep",
                         describe=lambda c: f"{c['task']}, residual {c['residual']}")
    by_key = {r["key"]: r for r in output["records"]}
    rows = []
    for task, group, name, config in runs:
        record = by_key.get(kx.run_key(config, args.seed))
        if record is None:
            continue  # failed (reported by run_grid)
        result = record["result"]
        rows.append({
            "task": task, "group": group, "name": name, "residual": config["residual"],
            "test_metric_name": result["metric"], "record": record,
            **{k: result[k] for k in (
                "test_metric", "test_score", "auc", "steps_to_target", "best_val_metric",
                "lyapunov_max_init", "lyapunov_max_final", "lyapunov_max_analytic", "angle0",
                "diverged", "train_seconds", "curve", "data")},
        })
    plot_path = os.path.join(args.output_dir, "residual_sweep.png")
    plot(rows, args.tasks, args.groups, plot_path)
    summary = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "settings": {k: v for k, v in vars(args).items() if k != "output_dir"},
        "runs": [{k: v for k, v in r.items() if k != "record"} for r in rows],
        "failed": [f"{c}: {e}" for c, _, e in output["failed"]],
        "plot": os.path.basename(plot_path),
    }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print_table(rows)
    print(f"\n{len(rows)} runs on {keras.backend.backend()}; plot: {plot_path}; "
          f"summary: {os.path.join(args.output_dir, 'summary.json')}")
    return summary


if __name__ == "__main__":
    main()
