"""Weak coupling: a WCRNN's Lyapunov exponents tend to log|eig R| as coupling -> 0.

The first paper's analytic result. For each residual (homogeneous,
heterogeneous, rotational) and coupling, computes the full Lyapunov
spectrum of a randomly initialised `WCRNN` driven by Gaussian inputs
(`kr.dynamics.lyapunov_spectrum`) and compares it with the residual's
analytic exponents `residual.analytic_exponents()` = log|eig R|, sorted.
The largest absolute difference should shrink with the coupling, down to the
finite-length error of the estimate (about 1/(T - warmup)).

    python examples/weak_coupling.py                      # about a minute
    python examples/weak_coupling.py --units 64 --steps 1000
    python examples/weak_coupling.py --smoke
"""

import argparse
import json
import os

import keras
import numpy as np

import keras_residual as kr
from keras_residual import experiments as kx


def residuals(seed):
    return {
        "homogeneous r=0.95": kr.residuals.Homogeneous(0.95),
        "heterogeneous r in [0.8, 1]": kr.residuals.Heterogeneous(
            radius_range=(0.8, 1.0), seed=seed),
        "rotational r in [0.9, 1], angle in [0.1, 1]": kr.residuals.Rotational(
            radius_range=(0.9, 1.0), angle_range=(0.1, 1.0), seed=seed),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=16, help="state size N (even)")
    parser.add_argument("--couplings", type=kx.comma_list(float), default="0.001,0.01,0.1,0.5",
                        help="comma-separated weak-coupling constants gamma")
    parser.add_argument("--steps", type=int, default=400, help="input length T")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch", type=int, default=8, help="input sequences")
    parser.add_argument("--output", default="results/weak_coupling", help="folder for the plot and JSON")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny run to check it works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.units, args.steps, args.warmup, args.batch = 4, 40, 5, 2
        args.couplings = args.couplings[:2]
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x = np.random.default_rng(args.seed).normal(size=(args.batch, args.steps, 3)).astype("float32")
    results = []
    spectra = {}
    for name, residual in residuals(args.seed).items():
        for coupling in args.couplings:
            fresh = residual.__class__.from_config(residual.get_config())
            layer = kr.layers.WCRNN(args.units, coupling=coupling, residual=fresh)
            layer(x[:, :2])
            spectrum = kr.dynamics.lyapunov_spectrum(layer, x, warmup=args.warmup)
            analytic = np.sort(np.asarray(layer.cell.residual.analytic_exponents()))[::-1]
            measured = np.asarray(spectrum.exponents)
            spectra[name, coupling] = (measured, analytic)
            results.append({
                "residual": name,
                "coupling": coupling,
                "max_abs_difference": float(np.max(np.abs(measured - analytic))),
                "lambda_max": float(measured[0]),
                "analytic_max": float(analytic[0]),
            })
            print(f"{name}, coupling {coupling:g}: max |lambda - log|eig R|| = "
                  f"{results[-1]['max_abs_difference']:.2e}", flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(residuals(args.seed))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        analytic = spectra[name, args.couplings[0]][1]
        ax.plot(analytic, "k-", linewidth=2, label="log|eig R|")
        for coupling in args.couplings:
            ax.plot(spectra[name, coupling][0], ".", label=f"coupling {coupling:g}")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("exponent index")
    axes[0][0].set_ylabel("Lyapunov exponent (per step)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(args.output, exist_ok=True)
    plot_path = os.path.join(args.output, "weak_coupling.png")
    fig.savefig(plot_path, dpi=110)
    plt.close(fig)

    summary = {
        "backend": keras.backend.backend(),
        "units": args.units,
        "steps": args.steps,
        "warmup": args.warmup,
        "results": results,
    }
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"\nN = {args.units}, T = {args.steps}, warmup {args.warmup}, {args.batch} sequences\n")
    print("| residual | coupling | max abs difference | lambda_max | analytic max |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['residual']} | {r['coupling']:g} | {r['max_abs_difference']:.2e} | "
              f"{r['lambda_max']:.4f} | {r['analytic_max']:.4f} |")
    print(f"\nplot: {plot_path}")
    return summary


if __name__ == "__main__":
    main()
