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

Trained by default with the paper's kind of optimiser, SGD with momentum
(`--optimizer adam` for Adam). Each run is
`keras_residual.experiments.train_sequence_model`, the code of the
reproduction sweeps (`experiments/reproduce.py run elman_smnist` runs this
comparison with seeds over a learning-rate grid). Measured per run: the test
score, the validation curve (once per epoch), the spectral radius of the
initial recurrent kernel, and the largest Lyapunov exponent at
initialisation and after training. Runs are kept in `<output-dir>/runs.jsonl`
and not repeated when the command is run again.

Saves `elman_init.png` (validation curves and lambda_max bars) and
`summary.json` in `--output-dir` and prints a results table.

    python examples/elman_init.py                          # sequential MNIST, a few minutes
    python examples/elman_init.py --tasks smnist,adding --epochs 10
    python examples/elman_init.py --variants orthogonal,wcr-rotational --coupling 0.05
    python examples/elman_init.py --smoke                  # seconds: a check that it runs
"""

import argparse
import json
import os

import keras
import numpy as np

from keras_residual import experiments as kx
from keras_residual.experiments import tasks as kx_tasks

TASKS = kx_tasks.SEQUENCE_TASKS
VARIANTS = ("orthogonal", "wcr-rotational", "wcr-homogeneous")
ANGLE0 = 2 * np.pi / 28


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--tasks", type=kx.comma_list(str, TASKS), default="smnist",
                        help=f"comma-separated tasks from {', '.join(TASKS)}")
    parser.add_argument("--variants", type=kx.comma_list(str, VARIANTS), default=",".join(VARIANTS),
                        help=f"comma-separated recurrent initialisations from {', '.join(VARIANTS)}")
    parser.add_argument("--units", type=int, default=64, help="state size N (even)")
    parser.add_argument("--coupling", type=float, default=0.1, help="gamma of WeaklyCoupledResidual")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs per run")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per step")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                        help="SGD with momentum (the paper's kind) or Adam; clipnorm 1 either way")
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    parser.add_argument("--train-samples", type=int, default=2000, help="training sequences per task")
    parser.add_argument("--val-samples", type=int, default=500, help="held out from the training set")
    parser.add_argument("--test-samples", type=int, default=1000, help="test sequences (at most)")
    parser.add_argument("--adding-length", type=int, default=200, help="steps of the adding problem")
    parser.add_argument("--standardize", action="store_true",
                        help="standardise the pixels with the training set's mean and std")
    parser.add_argument("--base-angle", type=float, default=ANGLE0,
                        help="rotation angle (rad/step) of wcr-rotational")
    parser.add_argument("--probe", type=int, default=8, help="test sequences driving the Lyapunov spectrum")
    parser.add_argument("--num-exponents", type=int, default=8, help="Lyapunov exponents computed")
    parser.add_argument("--warmup", type=int, default=100, help="Lyapunov warm-up steps")
    parser.add_argument("--source", default="auto", help="data source (see kr.datasets)")
    parser.add_argument("--output-dir", "--output", dest="output_dir", default="results/elman_init",
                        help="folder for runs.jsonl, the plot and summary.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights")
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


def recurrent_init(variant, args):
    """The JSON description of a variant's recurrent initializer."""
    if variant == "orthogonal":
        return {"kind": "orthogonal"}
    residual = ({"kind": "rotational", "radius": 1.0, "angle": args.base_angle}
                if variant == "wcr-rotational" else {"kind": "homogeneous", "radius": 1.0})
    return {"kind": "weakly_coupled", "residual": residual, "coupling": args.coupling}


def config_for(task, variant, args):
    steps_per_epoch = max(1, args.train_samples // args.batch_size)
    optimizer = {"name": args.optimizer, "learning_rate": args.learning_rate, "clipnorm": 1.0}
    if args.optimizer == "sgd":
        optimizer["momentum"] = args.momentum
    return {
        "task": task, "source": args.source, "standardize": args.standardize,
        "train_samples": args.train_samples, "val_samples": args.val_samples,
        "test_samples": args.test_samples, "length": args.adding_length,
        "model": "simple_rnn", "units": args.units,
        "recurrent_init": recurrent_init(variant, args), "optimizer": optimizer,
        "batch_size": args.batch_size, "steps": args.epochs * steps_per_epoch,
        "eval_every": steps_per_epoch,
        "lyapunov": {"probe": args.probe, "num_exponents": args.num_exponents,
                     "warmup": args.warmup},
    }


def spectral_radius(config, seed):
    """Largest |eigenvalue| of the recurrent kernel the run starts from."""
    layer = kx.make_recurrent(config, seed)
    layer.build((None, 2, 1))
    kernel = keras.ops.convert_to_numpy(layer.cell.recurrent_kernel)
    return float(np.max(np.abs(np.linalg.eigvals(kernel))))


def plot(runs, tasks, path):
    fig, axes = kx.plots.new_figure(len(tasks), 2, width=4.5)
    for row, task in enumerate(tasks):
        task_runs = [r for r in runs if r["task"] == task]
        ax = axes[row][0]
        for run in task_runs:
            kx.plots.plot_curves(ax, [run["record"]], y="val_metric", label=run["variant"])
        if task_runs:
            ax.axhline(task_runs[0]["chance"], color="0.6", lw=0.8, ls=":",
                       label="chance / baseline")
            ax.set_ylabel(f"validation {task_runs[0]['metric']}")
        ax.set_xlabel("training step")
        ax.set_title(f"{task}: SimpleRNN, recurrent initialisation", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[row][1]
        positions = np.arange(len(task_runs))
        nan = float("nan")
        for offset, key, label, color in ((-0.2, "lyapunov_max_init", "init", "0.7"),
                                          (0.2, "lyapunov_max_final", "trained", "C3")):
            ax.bar(positions + offset, [nan if r[key] is None else r[key] for r in task_runs],
                   0.4, label=label, color=color)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(positions)
        ax.set_xticklabels([r["variant"] for r in task_runs], fontsize=8)
        ax.set_title(f"{task}: max Lyapunov exponent", fontsize=9)
        ax.legend(fontsize=7)
    kx.plots.save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    plan = [(task, variant, config_for(task, variant, args))
            for task in args.tasks for variant in args.variants]
    os.makedirs(args.output_dir, exist_ok=True)
    output = kx.run_grid(kx.train_sequence_model, [c for *_, c in plan], [args.seed],
                         os.path.join(args.output_dir, "runs.jsonl"), name="elman_init",
                         describe=lambda c: f"{c['task']}, {c['recurrent_init']}")
    by_key = {r["key"]: r for r in output["records"]}
    runs = []
    for task, variant, config in plan:
        record = by_key.get(kx.run_key(config, args.seed))
        if record is None:
            continue  # failed (reported by run_grid)
        result = record["result"]
        runs.append({
            "task": task, "variant": variant, "record": record, "metric": result["metric"],
            "chance": 0.1 if result["metric"] == "accuracy" else kx_tasks.ADDING_BASELINE_MSE,
            "recurrent_kernel_spectral_radius": spectral_radius(config, args.seed),
            "val_curve": [c["val_metric"] for c in result["curve"]],
            **{k: result[k] for k in ("test_metric", "best_val_metric", "lyapunov_max_init",
                                      "lyapunov_max_final", "train_seconds", "data")},
        })
    plot_path = os.path.join(args.output_dir, "elman_init.png")
    plot(runs, args.tasks, plot_path)
    summary = {
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "settings": {k: v for k, v in vars(args).items() if k != "output_dir"},
        "runs": [{k: v for k, v in r.items() if k != "record"} for r in runs],
        "plot": os.path.basename(plot_path),
    }
    with open(os.path.join(args.output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    fmt = kx.format_number
    print("\n| task | recurrent init | test score | best val | fit s "
          "| spectral radius W | lambda_max init | lambda_max trained |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['task']} | {r['variant']} | {r['metric']} {fmt(r['test_metric'], 4)} "
              f"| {fmt(r['best_val_metric'], 4)} | {r['train_seconds']:.1f} "
              f"| {fmt(r['recurrent_kernel_spectral_radius'])} "
              f"| {fmt(r['lyapunov_max_init'], 4)} | {fmt(r['lyapunov_max_final'], 4)} |")
    print(f"\n{len(runs)} runs on {keras.backend.backend()} (chance accuracy 0.1; adding "
          f"baseline MSE 0.167); plot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
