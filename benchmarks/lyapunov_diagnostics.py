"""The Lyapunov engine as a new user meets it, its diagnostics' cost, and threads.

On the Elman configuration of the peer comparison (SimpleRNN, N = 128 units,
recurrent gain 1.5, T = 784 steps of one feature, batch 8, the full
spectrum), per backend, in a fresh process each (so that the first call pays
its tracing and compilation as a new user's does):

- **defaults**: `lyapunov_spectrum(layer, x)` with every default, first and
  warm call, and with `qr_interval=1`; the largest difference from the
  float64 NumPy reference;
- **diagnostics**: warm calls with `history=50`, `max_exponent_direct`
  (against `num_exponents=1`), and `covariant_lyapunov_vectors` with 16
  vectors (forward and backward warm-ups of T / 8 steps each);
- **threads**: the defaults' warm call with 1 and with 2 threads (torch
  `set_num_threads`, TensorFlow's intra/inter-op pools, XLA's CPU threads and
  OpenBLAS on JAX), set by this script before the backend starts: the library
  itself never changes them;
- **peer** (torch, with `--peer-path` pointing at a checkout of
  github.com/shlizee/LyapunovAutoEncode): Vogt et al.'s `calc_LEs_an` on the
  same weights and inputs (a `torch.nn.RNN` with our weights, warm-up 0, its
  log2 exponents converted to natural log), first call. Its code is not part
  of this repository; the script imports it from that path.

    python benchmarks/lyapunov_diagnostics.py --peer-path /path/to/LyapunovAutoEncode
    python benchmarks/lyapunov_diagnostics.py --backends jax --quick      # a check that it runs
    python benchmarks/lyapunov_diagnostics.py --write                     # into BENCHMARKS.md
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--steps", type=int, default=784)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--peer-path", default=None,
                        help="a checkout of github.com/shlizee/LyapunovAutoEncode")
    parser.add_argument("--quick", action="store_true", help="T = 120, N = 32: seconds")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _set_threads(backend, threads):
    """Thread counts for one process, before the backend is imported."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if threads == 1:
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        os.environ["XLA_FLAGS"] = flags.strip()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)


def _layer_and_inputs(args):
    import keras
    import numpy as np

    layer = keras.layers.SimpleRNN(
        args.units, kernel_initializer=keras.initializers.GlorotUniform(seed=1),
        recurrent_initializer=keras.initializers.Orthogonal(gain=1.5, seed=2))
    x = np.random.default_rng(0).normal(size=(args.batch, args.steps, 1)).astype("float32")
    layer(x[:, :2])
    return layer, x


def _timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _peer(args, layer, x, reference):
    """Vogt et al.'s calc_LEs_an on our weights and inputs: (seconds, max abs diff)."""
    import contextlib
    import io

    import numpy as np
    import torch

    sys.path.insert(0, args.peer_path)
    import lyapunov as peer  # noqa: E402 (the peer's module, from --peer-path)

    kernel, recurrent, bias = (np.asarray(w) for w in layer.get_weights())

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn_layer = torch.nn.RNN(1, args.units, batch_first=True)
            with torch.no_grad():
                self.rnn_layer.weight_ih_l0.copy_(torch.as_tensor(kernel.T))
                self.rnn_layer.weight_hh_l0.copy_(torch.as_tensor(recurrent.T))
                self.rnn_layer.bias_ih_l0.copy_(torch.as_tensor(bias))
                self.rnn_layer.bias_hh_l0.zero_()

        def forward(self, x, h):
            return self.rnn_layer(x, h)

    model = Model()
    h0 = torch.zeros(1, args.batch, args.units)
    with contextlib.redirect_stderr(io.StringIO()), torch.no_grad():
        seconds, (exponents, _) = _timed(lambda: peer.calc_LEs_an(
            torch.as_tensor(x), h0, model=model, rec_layer="rnn", warmup=0))
    natural = np.sort(exponents.numpy().astype("float64") * np.log(2.0), axis=-1)[:, ::-1]
    return seconds, float(np.max(np.abs(natural.mean(axis=0) - reference.exponents)))


def worker(args):
    """One backend, one thread count: prints one JSON line of figures."""
    backend, threads = args.worker, args.threads
    os.environ["KERAS_BACKEND"] = backend
    _set_threads(backend, threads)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import numpy as np

    import keras_residual as kr

    layer, x = _layer_and_inputs(args)
    figures = {"backend": backend, "threads": threads}
    first, spectrum = _timed(lambda: kr.dynamics.lyapunov_spectrum(layer, x))
    warm, spectrum = _timed(lambda: kr.dynamics.lyapunov_spectrum(layer, x))
    figures.update(default_first=first, default_warm=warm, default_num_qr=spectrum.num_qr)
    if threads == 2 or args.quick:
        reference = kr.dynamics.lyapunov_spectrum_numpy(layer, x)
        figures["default_diff"] = float(np.max(np.abs(spectrum.exponents - reference.exponents)))
        first1, every = _timed(lambda: kr.dynamics.lyapunov_spectrum(layer, x, qr_interval=1))
        warm1, every = _timed(lambda: kr.dynamics.lyapunov_spectrum(layer, x, qr_interval=1))
        figures.update(q1_first=first1, q1_warm=warm1,
                       q1_diff=float(np.max(np.abs(every.exponents - reference.exponents))),
                       default_vs_q1=float(np.max(np.abs(spectrum.exponents - every.exponents))))
        for key, call in [
            ("history", lambda: kr.dynamics.lyapunov_spectrum(layer, x, history=50)),
            ("top1", lambda: kr.dynamics.lyapunov_spectrum(layer, x, num_exponents=1)),
            ("direct", lambda: kr.dynamics.max_exponent_direct(layer, x)),
            ("clv16", lambda: kr.dynamics.covariant_lyapunov_vectors(
                layer, x, num_vectors=16, warmup=args.steps // 8,
                backward_warmup=args.steps // 8)),
        ]:
            call()  # compile
            figures[key], result = _timed(call)
        direct = kr.dynamics.max_exponent_direct(layer, x)
        figures["direct_vs_max"] = float(abs(direct.value - spectrum.max))
        if backend == "torch" and args.peer_path:
            figures["peer_first"], figures["peer_diff"] = _peer(args, layer, x, reference)
    print("FIGURES " + json.dumps(figures), flush=True)


def main(argv=None):
    args = _parse(argv)
    if args.quick:
        args.units, args.steps = 32, 120
    if args.worker:
        return worker(args)
    rows = []
    for backend in [b for b in args.backends.split(",") if b]:
        for threads in (1, 2):
            command = [sys.executable, __file__, "--worker", backend, "--threads", str(threads),
                       "--units", str(args.units), "--steps", str(args.steps),
                       "--batch", str(args.batch)] + (["--quick"] if args.quick else [])
            if args.peer_path:
                command += ["--peer-path", args.peer_path]
            env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
            out = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [line for line in out.stdout.splitlines() if line.startswith("FIGURES ")]
            if not lines:
                raise SystemExit(f"{backend} ({threads} threads) failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(lines[-1][len("FIGURES "):]))
            print(rows[-1], flush=True)
    text = _markdown(rows, args)
    print(text)
    if args.write:
        _report.update_section("lyapunov_diagnostics", text)
    return 0


def _markdown(rows, args):
    def cell(row, key, fmt="{:.2f}"):
        return fmt.format(row[key]) if key in row else "—"

    full = [r for r in rows if "q1_warm" in r and r["threads"] == 2]
    defaults = _report.markdown_table(
        ["backend", "default first s", "default warm s (QRs)", "max diff vs NumPy",
         "q=1 first s", "q=1 warm s", "q=1 max diff", "default vs q=1",
         "Vogt calc_LEs_an first s", "its max diff"],
        [[r["backend"], cell(r, "default_first"),
          f"{r['default_warm']:.2f} ({r['default_num_qr']})", cell(r, "default_diff", "{:.1e}"),
          cell(r, "q1_first"), cell(r, "q1_warm"), cell(r, "q1_diff", "{:.1e}"),
          cell(r, "default_vs_q1", "{:.1e}"), cell(r, "peer_first"),
          cell(r, "peer_diff", "{:.1e}")] for r in full])
    diagnostics = _report.markdown_table(
        ["backend", "default warm s", "history=50 s", "num_exponents=1 s",
         "max_exponent_direct s", "|direct - max|", "covariant vectors (k = 16) s"],
        [[r["backend"], cell(r, "default_warm"), cell(r, "history"), cell(r, "top1"),
          cell(r, "direct"), cell(r, "direct_vs_max", "{:.1e}"), cell(r, "clv16")]
         for r in full])
    threads = _report.markdown_table(
        ["backend", "1 thread: first s", "1 thread: warm s", "2 threads: first s",
         "2 threads: warm s"],
        [[backend] + [cell(r, key) for r in rows if r["backend"] == backend
                      for key in ("default_first", "default_warm")]
         for backend in dict.fromkeys(r["backend"] for r in rows)])
    return (
        "## Lyapunov spectrum: the defaults a new user meets, diagnostics, threads\n\n"
        f"`python benchmarks/lyapunov_diagnostics.py"
        f"{' --peer-path <LyapunovAutoEncode checkout>' if args.peer_path else ''}` "
        f"(SimpleRNN, N = {args.units}, recurrent gain 1.5, T = {args.steps}, batch {args.batch}, "
        "full spectrum; one fresh process per backend and thread count, so the first call "
        "includes tracing and compilation; one timed call each, on an otherwise idle machine). "
        "Machine: " + _report.machine() + ".\n\n"
        "Defaults (2 threads): `lyapunov_spectrum(layer, x)` as a new user calls it "
        "(`qr_interval=\"auto\"`), against `qr_interval=1`, and Vogt et al.'s `calc_LEs_an` "
        "(github.com/shlizee/LyapunovAutoEncode, torch) on the same weights and inputs; max "
        "diff is the largest absolute difference of the batch-mean exponents from the float64 "
        "NumPy reference (a chaotic net: float32 trajectories drift from float64 ones). The "
        "peer's exponents are further off because its `oneStepVarQR` propagates Z = J^T Q, "
        "with `rnn_jac`'s J = d h_t / d h_{t-1} (the transposed Jacobian: the growth of the "
        "time-reversed product), and it averages over all T steps with no warm-up. "
        "|direct - max| compares the float64 `max_exponent_direct` with the float32 default "
        "spectrum (the float32 run drifts on this chaotic net; in float64 they agree to "
        "~1e-7, tests/dynamics/test_diagnostics.py).\n\n"
        + defaults + "\n\nDiagnostics (warm calls, 2 threads):\n\n" + diagnostics
        + "\n\nThreads (the library uses the backend's settings; set here per process):\n\n"
        + threads + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
