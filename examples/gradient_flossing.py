"""Gradient flossing on a delayed-copy task: plain, flossed before, flossed during training.

Engelken (NeurIPS 2023, arXiv 2312.17306) reports that pushing an RNN's top
Lyapunov exponents toward 0 ("gradient flossing") before and during training
raises the success rate and speed of learning tasks with long time horizons.
This example measures that claim at CPU scale.

Task (delayed copy): each sequence is T = delay + 10 steps of random bits
b_t in {-1, +1} (one input feature); the target, read at the last step, is
the bit `delay` steps before the end, b_{T - 1 - delay}. Chance is 50 %;
a run *succeeds* when its held-out accuracy reaches `--threshold` (0.95),
and its *steps to threshold* is the first evaluation (every epoch) where it
did. Sweeping the delay finds where plain training stops succeeding.

Models: SimpleRNN, LSTM and a WCRNN (homogeneous residual 0.9, coupling
0.5; a fading-memory net), each `--units` wide with a Dense(1) sigmoid
head, trained with Adam. Settings:

- `plain`: no flossing;
- `before`: `--floss-steps` full-batch steps of
  `keras.Model(x, kr.layers.LyapunovExponents(rnn, k)(x))` toward 0
  before training (plain Keras `fit`);
- `during`: `kr.callbacks.GradientFlossing(probe, k, every_n_steps=...,
  until_epoch=...)` in the task's own `fit`.

Each run is `keras_residual.experiments.train_flossing_copy`, the code of the
reproduction sweep (`experiments/reproduce.py run flossing_copy`, 5 seeds per
cell). Prints a table (success rate and median steps to threshold per model,
setting and delay), writes `summary.json` and learning curves
(`gradient_flossing.png`) to `--output`; runs are kept in
`<output>/runs.jsonl` and not repeated when the command is run again.

    python examples/gradient_flossing.py                  # the sweep (long)
    python examples/gradient_flossing.py --delays 5,20 --seeds 2 --models simple_rnn
    python examples/gradient_flossing.py --smoke
"""

import argparse
import json
import os

import keras
import numpy as np

from keras_residual import experiments as kx
from keras_residual.experiments.flossing import COPY_MODELS as MODELS

SETTINGS = ("plain", "before", "during")
delayed_copy = kx.delayed_copy  # the task, from the experiment runner


def config_for(model, setting, delay, args):
    """The `kx.train_flossing_copy` configuration of one run."""
    return {
        "model": model, "setting": setting, "delay": delay, "units": args.units,
        "samples": args.samples, "val_samples": args.val_samples, "batch_size": args.batch,
        "epochs": args.epochs, "learning_rate": args.lr, "threshold": args.threshold,
        "num_exponents": args.num_exponents, "probe": args.probe,
        "floss_steps": args.floss_steps, "floss_lr": args.floss_lr,
        "floss_every": args.floss_every, "floss_epochs": args.floss_epochs,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", type=kx.comma_list(int), default="10,40,80,120",
                        help="comma-separated delays d")
    parser.add_argument("--models", type=kx.comma_list(str, MODELS), default=",".join(MODELS))
    parser.add_argument("--settings", type=kx.comma_list(str, SETTINGS), default=",".join(SETTINGS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2048, help="training sequences")
    parser.add_argument("--val-samples", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--threshold", type=float, default=0.95, help="success: val accuracy")
    parser.add_argument("--num-exponents", type=int, default=4, help="k flossed")
    parser.add_argument("--probe", type=int, default=32, help="flossing batch")
    parser.add_argument("--floss-steps", type=int, default=100, help="'before': flossing steps")
    parser.add_argument("--floss-lr", type=float, default=1e-2)
    parser.add_argument("--floss-every", type=int, default=8, help="'during': every n steps")
    parser.add_argument("--floss-epochs", type=int, default=5, help="'during': until epoch")
    parser.add_argument("--output", default="results/gradient_flossing")
    parser.add_argument("--smoke", action="store_true", help="tiny run to check it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.delays, args.seeds, args.units = [3], 1, 4
        args.samples, args.val_samples, args.batch, args.epochs = 32, 16, 16, 2
        args.probe, args.floss_steps, args.floss_every, args.floss_epochs = 4, 2, 1, 1
        args.num_exponents = 2
    return args


def table(runs):
    rows = ["| model | setting | delay | success | median steps to threshold | "
            "lambda_max init -> start -> final |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["setting"], r["delay"]) for r in runs},
                  key=lambda k: (MODELS.index(k[0]), k[2], SETTINGS.index(k[1])))
    for model, setting, delay in keys:
        group = [r for r in runs if (r["model"], r["setting"], r["delay"]) == (model, setting, delay)]
        wins = [r["steps_to_threshold"] for r in group if r["success"]]
        median = f"{int(np.median(wins))}" if wins else "—"
        lam = lambda key: kx.summarize([r[key] for r in group]).mean  # noqa: E731
        rows.append(
            f"| {model} | {setting} | {delay} | {len(wins)}/{len(group)} | {median} | "
            f"{lam('lambda_max_init'):+.3f} -> {lam('lambda_max_start'):+.3f} -> "
            f"{lam('lambda_max_final'):+.3f} |")
    return "\n".join(rows)


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in MODELS if any(r["model"] == m for r in runs)]
    delays = sorted({r["delay"] for r in runs})
    fig, axes = plt.subplots(len(models), len(delays), figsize=(3.2 * len(delays), 2.6 * len(models)),
                             squeeze=False, sharey=True)
    colors = {"plain": "tab:gray", "before": "tab:blue", "during": "tab:red"}
    for i, model in enumerate(models):
        for j, delay in enumerate(delays):
            ax = axes[i][j]
            for r in runs:
                if r["model"] == model and r["delay"] == delay:
                    curve = [np.nan if a is None else a for a in r["val_accuracy"]]
                    ax.plot(np.arange(1, len(curve) + 1), curve,
                            color=colors[r["setting"]], alpha=0.7,
                            label=r["setting"] if r["seed"] == runs[0]["seed"] else None)
            ax.set_title(f"{model}, delay {delay}", fontsize=9)
            ax.set_ylim(0.4, 1.02)
            if i == len(models) - 1:
                ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("val accuracy")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    configs = [config_for(model, setting, delay, args) for delay in args.delays
               for model in args.models for setting in args.settings]
    output = kx.run_grid(kx.train_flossing_copy, configs, range(args.seeds),
                         os.path.join(args.output, "runs.jsonl"), name="gradient_flossing",
                         describe=lambda c: f"{c['model']} {c['setting']} d={c['delay']}")
    runs = []
    for record in output["records"]:
        c, result = record["config"], record["result"]
        runs.append({"model": c["model"], "setting": c["setting"], "delay": c["delay"],
                     "seed": record["seed"], **result, "seconds": result["train_seconds"]})
        print(f"{c['model']:10s} {c['setting']:6s} d={c['delay']:3d} seed {record['seed']}: "
              f"best val acc {max(a for a in result['val_accuracy'] if a is not None):.3f}, "
              f"lambda_max {result['lambda_max_start']:+.3f} -> "
              f"{result['lambda_max_final']:+.3f} ({result['train_seconds']:.0f} s)")
    settings = {k: v for k, v in vars(args).items() if k != "output"}
    summary = {"backend": keras.backend.backend(), "settings": settings, "runs": runs}
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    plot_path = os.path.join(args.output, "gradient_flossing.png")
    plot(runs, plot_path)
    print()
    print(table(runs))
    print(f"\nplot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
