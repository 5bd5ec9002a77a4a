"""Speed and agreement of `kr.dynamics.lyapunov_spectrum` against NumPy.

Full Lyapunov spectrum of a WCRNN (N units, state N) and of an LSTM (N units,
state [h, c] of 2N) driven by a batch of random sequences of sequential-MNIST
length, on one Keras backend, against a plain float64 NumPy implementation of
the same algorithm (`kr.dynamics.lyapunov_spectrum_numpy`: hand-written
Jacobians, batched `J @ Q`, stacked `numpy.linalg.qr`) timed in the same run.
NumPy runs with the number of BLAS threads that is fastest on this machine
(measured on a short probe; threadpoolctl decides, when installed). The
library uses whatever threads the backend is set to; this benchmark sets
them itself with `--threads` (default 1: torch's intra-op threads and the
OpenBLAS that JAX's LAPACK calls use, as the engine did itself until it
stopped changing user settings; `--threads 0` leaves the defaults):
`benchmarks/lyapunov_diagnostics.py` compares 1 and 2 threads.

Reported per model: seconds of the NumPy reference, of the first call of
`lyapunov_spectrum` (tracing and compilation included) and of a second call
(warm), the warm speedup, and the largest absolute difference of the
exponents from the reference, for float32 with `qr_interval=1` and
`qr_interval="auto"`, and for one `dtype="float64"` call (qr_interval 1).

`--callback` instead measures what `kr.callbacks.LyapunovCallback` adds to an
epoch of the quickstart configuration (WCRNN 64 units, Rotational(2*pi/28),
coupling 0.02, T = 784, 4000 samples, batch 64, Adam 1e-2 with clipnorm 1),
with the quickstart's callback (8 probe sequences, 16 exponents, warmup 100)
and with a heavier one (16 sequences, the full spectrum).

Usage:

    python benchmarks/lyapunov_speed.py                     # KERAS_BACKEND (default tensorflow)
    python benchmarks/lyapunov_speed.py --backend jax
    python benchmarks/lyapunov_speed.py --backend all       # one process per backend
    python benchmarks/lyapunov_speed.py --steps 200 --models wcrnn   # quicker
    python benchmarks/lyapunov_speed.py --callback --backend all
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")

# Context for the SimpleRNN (Elman) rows.
PEER_CONTEXT = (
    "\nPeer design (measured above, torch): the algorithm of Vogt et al.'s `calc_LEs_an` "
    "(github shlizee/LyapunovAutoEncode), written here from its description: per step the "
    "analytic (B, N, N) Jacobian, Z = J^T Q, a batched float32 `torch.linalg.qr` and the sign "
    "fix as products with diag(sign R). Our issue tracker recorded 4.4 s for the original "
    "code on this configuration on a 2-core Intel Xeon. Differences from the NumPy loop for "
    "this chaotic net (lambda_1 > 0) are mostly the trajectories' own divergence (float32 "
    "against float64 states); `vs q=1` compares with our float32 run with a QR every step, "
    "the same trajectory."
)


def peer_design_seconds(layer, x):
    """Seconds (fastest torch thread count of 1 and all cores) and exponents
    of the peer's design of the Elman spectrum, in torch float32: per step
    h = tanh(x U + h W + b), J = d h_t / d h_{t-1} formed as a (B, N, N)
    tensor, Z = J^T Q in the peer's row convention, QR of Z, sign fix by
    matrix products with diag(sign R), logs summed per step."""
    import numpy as np
    import torch

    cell = layer.cell
    U, W, b = (torch.as_tensor(np.asarray(v), dtype=torch.float32) for v in cell.get_weights())
    xs = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    batch, steps, units = xs.shape[0], xs.shape[1], W.shape[0]

    def run(length):
        h = torch.zeros(batch, units)
        q = torch.eye(units).expand(batch, units, units).contiguous()
        total = torch.zeros(batch, units)
        for t in range(length):
            h = torch.tanh(xs[:, t] @ U + h @ W + b)
            # J[b, i, j] = d h_i / d h_j = (1 - h_i^2) W[j, i]; the peer stores J^T.
            rows = W[None] * (1 - h * h)[:, None, :]
            z = torch.matmul(rows.transpose(1, 2), q)
            q, r = torch.linalg.qr(z, "reduced")
            sign = torch.diag_embed(torch.sign(torch.diagonal(r, dim1=1, dim2=2)))
            q = torch.matmul(q, sign)
            total = total + torch.log(torch.diagonal(torch.matmul(sign, r), dim1=1, dim2=2))
        return total

    threads = torch.get_num_threads()
    best = (float("inf"), None, None)
    try:
        with torch.no_grad():
            for count in sorted({1, os.cpu_count() or 1}):
                torch.set_num_threads(count)
                run(min(steps, 20))
                start = time.perf_counter()
                total = run(steps)
                elapsed = time.perf_counter() - start
                if elapsed < best[0]:
                    best = (elapsed, count, total)
    finally:
        torch.set_num_threads(threads)
    exponents = -np.sort(-(best[2].numpy().astype("float64") / steps), axis=-1).mean(axis=0)
    return best[0], best[1], exponents


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                        help="tensorflow, jax, torch, or all (default: KERAS_BACKEND)")
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--steps", type=int, default=784)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--models", default="wcrnn,lstm,gru,simple_rnn")
    parser.add_argument("--no-float64", action="store_true", help="skip the dtype='float64' runs")
    parser.add_argument("--qr-method", default="auto", help="qr_method of lyapunov_spectrum")
    parser.add_argument("--qr-intervals", default="1,auto",
                        help="comma-separated qr_interval values to time (default: 1,auto)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op and BLAS threads for the computation (0: defaults)")
    parser.add_argument("--callback", action="store_true",
                        help="measure the LyapunovCallback's cost per epoch instead")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the --callback run")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads for the --callback training runs (torch's "
                             "default of one per core is much slower on a busy machine)")
    parser.add_argument("--callback-qr-interval", default="auto",
                        help="qr_interval of the callback in the --callback run (default auto, "
                             "the callback's default; or an integer)")
    return parser.parse_args(argv)


def _numpy_threads(run_probe):
    """The fastest BLAS thread count for the NumPy reference (a context)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "default"
    best, best_time = None, float("inf")
    for threads in (1, os.cpu_count() or 1):
        with threadpool_limits(limits=threads, user_api="blas"):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                run_probe()
                times.append(time.perf_counter() - start)
        elapsed = sorted(times)[1]  # the median: robust to one lucky or unlucky run
        if elapsed < best_time:
            best, best_time = threads, elapsed
    return threadpool_limits(limits=best, user_api="blas"), str(best)


def _models(names, units):
    import keras

    import keras_residual as kr

    for name in names:
        if name == "wcrnn":
            yield "WCRNN", units, kr.layers.WCRNN(
                units, coupling=0.1,
                residual=kr.residuals.Rotational(radius=1.0, angle=2 * 3.141592653589793 / 28),
                kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                recurrent_initializer=keras.initializers.Orthogonal(seed=2),
            )
        elif name == "lstm":
            yield "LSTM", 2 * units, keras.layers.LSTM(
                units,
                kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                recurrent_initializer=keras.initializers.Orthogonal(seed=2),
            )
        elif name == "gru":
            yield "GRU", units, keras.layers.GRU(
                units,
                kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                recurrent_initializer=keras.initializers.Orthogonal(seed=2),
            )
        elif name == "simple_rnn":
            # The Elman net of the peer comparison: recurrent gain 1.5.
            yield "SimpleRNN", units, keras.layers.SimpleRNN(
                units,
                kernel_initializer=keras.initializers.GlorotUniform(seed=1),
                recurrent_initializer=keras.initializers.Orthogonal(gain=1.5, seed=2),
            )
        else:
            raise SystemExit(
                f"--models: unknown model {name!r}; allowed: wcrnn, lstm, gru, simple_rnn"
            )


def spectrum_speed(args):
    import numpy as np

    import keras_residual as kr

    backend = os.environ["KERAS_BACKEND"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.steps, 1)).astype("float32")
    intervals = [int(q) if q != "auto" else q for q in args.qr_intervals.split(",")]
    dtypes = ["float32"] + ([] if args.no_float64 else ["float64"])
    rows = []
    for name, state, layer in _models(args.models.split(","), args.units):
        layer(x[:, :2])
        every_step = None
        probe = x[:, : max(2, args.steps // 20)]
        context, threads = _numpy_threads(lambda: kr.dynamics.lyapunov_spectrum_numpy(layer, probe))
        with context:
            reference = kr.dynamics.lyapunov_spectrum_numpy(layer, x)
        print(f"# {backend} {name}: NumPy {reference.seconds:.1f} s ({threads} BLAS threads)",
              flush=True)
        if name == "SimpleRNN" and backend == "torch":
            seconds, peer_threads, exponents = peer_design_seconds(layer, x)
            rows.append({
                "model": "SimpleRNN, peer design", "S": state, "dtype": "float32",
                "interval": 1, "num_qr": args.steps, "numpy": reference.seconds,
                "numpy_threads": threads, "first": seconds, "warm": seconds,
                "speedup": reference.seconds / seconds,
                "max_diff": float(np.max(np.abs(exponents - reference.exponents))),
                "max_diff_rel": float(np.max(np.abs(exponents - reference.exponents)
                                             / np.maximum(1.0, np.abs(reference.exponents)))),
                "qr": f"householder f32 ({peer_threads} threads)", "jacobian": "(B, N, N)",
                "range": f"{reference.exponents[0]:.3f} .. {reference.exponents[-1]:.3f}",
            })
            print(f"# {rows[-1]}", flush=True)
        for dtype in dtypes:
            # float64 is for validation: one call (compilation included), qr_interval 1.
            for interval in intervals if dtype == "float32" else [1]:
                kwargs = dict(dtype=dtype, qr_interval=interval, qr_method=args.qr_method)
                first = kr.dynamics.lyapunov_spectrum(layer, x, **kwargs)
                if dtype == "float32":
                    warm = kr.dynamics.lyapunov_spectrum(layer, x, **kwargs)
                else:
                    warm = first
                diff = np.abs(warm.exponents - reference.exponents)
                if dtype == "float32" and interval == 1:
                    every_step = warm  # the same float32 trajectory, a QR every step
                row = {
                    "model": name, "S": state, "dtype": dtype, "interval": interval,
                    "num_qr": warm.num_qr, "numpy": reference.seconds,
                    "numpy_threads": threads,
                    "first": first.seconds, "warm": warm.seconds,
                    "speedup": reference.seconds / warm.seconds,
                    "max_diff": float(np.max(diff)),
                    "max_diff_rel": float(np.max(diff / np.maximum(1.0, np.abs(reference.exponents)))),
                    "qr": warm.qr_method, "jacobian": warm.jacobian,
                    "range": f"{reference.exponents[0]:.3f} .. {reference.exponents[-1]:.3f}",
                    "vs_q1": (float(np.max(np.abs(warm.exponents - every_step.exponents)))
                              if dtype == "float32" and every_step is not None else float("nan")),
                }
                rows.append(row)
                print(f"# {row}", flush=True)

    threads = f"{args.threads} thread(s) (torch, BLAS)" if args.threads else "default threads"
    print(f"\nLyapunov spectrum, backend {backend}: N = {args.units} units, T = {args.steps}, "
          f"batch {args.batch}, full spectrum (k = S), CPU, {threads}")
    header = ("| model | S | exponents (NumPy) | NumPy f64 s (BLAS threads) | dtype | qr_interval "
              "(QRs) | first call s | warm call s | speedup (warm) | max abs diff | "
              "max diff / max(1, abs(lambda)) | max abs diff vs float32 q=1 | QR / Jacobian |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        print(f"| {r['model']} | {r['S']} | {r['range']} | {r['numpy']:.1f} ({r['numpy_threads']}) | "
              f"{r['dtype']} | {r['interval']} ({r['num_qr']}) | {r['first']:.2f} | "
              f"{r['warm']:.2f} | {r['speedup']:.1f}x | {r['max_diff']:.1e} | "
              f"{r['max_diff_rel']:.1e} | {r.get('vs_q1', float('nan')):.1e} | "
              f"{r['qr']} / {r['jacobian']} |")
    if any(r["model"] == "SimpleRNN" for r in rows):
        print(PEER_CONTEXT)


def callback_cost(args):
    import keras
    import numpy as np

    import keras_residual as kr

    backend = os.environ["KERAS_BACKEND"]
    threads = ""
    if backend == "torch" and args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
        threads = f", torch.set_num_threads({args.torch_threads})"
    rng = np.random.default_rng(0)
    samples, length, units = 4000, 784, 64
    x = rng.uniform(size=(samples, length, 1)).astype("float32")
    y = rng.integers(0, 10, size=(samples,))

    def model():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([
            keras.Input((length, 1)),
            kr.layers.WCRNN(units, coupling=0.02,
                            residual=kr.residuals.Rotational(angle=2 * np.pi / 28)),
            keras.layers.Dense(10, activation="softmax"),
        ])
        m.compile(keras.optimizers.Adam(1e-2, clipnorm=1.0), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        return m

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.last = time.perf_counter() - self.start

    timer = EpochTimer()
    model().fit(x, y, batch_size=64, epochs=args.epochs, verbose=0, callbacks=[timer])
    epoch_plain = timer.last  # the last epoch: compilation excluded

    interval = args.callback_qr_interval
    interval = interval if interval == "auto" else int(interval)
    settings = {
        "quickstart (probe 8, k = 16, warmup 100)": dict(probes=8, num_exponents=16, warmup=100),
        "probe 16, full spectrum (k = 64)": dict(probes=16, num_exponents=None, warmup=0),
    }
    print(f"\nLyapunovCallback cost, backend {backend}: WCRNN {units} units (coupling 0.02, "
          f"Rotational(2*pi/28)), T = {length}, {samples} samples, batch 64, Adam 1e-2; "
          f"callback qr_interval={interval}, every epoch{threads}")
    print("| callback settings | epoch without callback s | callback calls s (epoch -1 = "
          "compile, then each epoch) | warm call / epoch | keys in History |")
    print("|---|---|---|---|---|")
    for label, setting in settings.items():
        lyapunov = kr.callbacks.LyapunovCallback(
            x[: setting["probes"]], num_exponents=setting["num_exponents"],
            warmup=setting["warmup"], qr_interval=interval,
        )
        history = model().fit(x, y, batch_size=64, epochs=args.epochs, verbose=0,
                              callbacks=[lyapunov, EpochTimer()])
        calls = [r.seconds for r in lyapunov.results]
        warm = min(calls[1:]) if len(calls) > 1 else calls[0]
        keys = sorted(k for k in history.history if k.startswith("lyapunov"))
        print(f"| {label} | {epoch_plain:.2f} | {', '.join(f'{c:.2f}' for c in calls)} | "
              f"{100 * warm / epoch_plain:.1f}% | {', '.join(keys)} |", flush=True)


def main(argv=None):
    args = _parse(argv)
    if args.backend == "all":
        code = 0
        for backend in BACKENDS:
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            argv = [a for a in (argv or sys.argv[1:])]
            if "--backend" in argv:
                i = argv.index("--backend")
                del argv[i:i + 2]
            argv = [a for a in argv if not a.startswith("--backend=")]
            code |= subprocess.call([sys.executable, __file__, "--backend", backend, *argv], env=env)
        return code
    if args.backend not in BACKENDS:
        raise SystemExit(f"--backend: unknown backend {args.backend!r}; allowed: {BACKENDS} or all")
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.threads:
        for name in ("OPENBLAS_NUM_THREADS",):  # TensorFlow keeps its own pools, as before
            os.environ[name] = str(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with _threads(args.backend, args.threads):
        if args.callback:
            callback_cost(args)
        else:
            spectrum_speed(args)
    return 0


@contextlib.contextmanager
def _threads(backend, threads):
    """torch's intra-op threads and the BLAS threads for the run. The BLAS
    libraries are limited by environment variables too (set before the
    backend loads them: threadpoolctl only reaches libraries already loaded,
    and JAX loads its LAPACK at its first QR)."""
    if not threads:
        yield
        return
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=threads, user_api="blas"):
        yield


if __name__ == "__main__":
    sys.exit(main())
