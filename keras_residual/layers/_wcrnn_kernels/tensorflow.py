"""Fused WCRNN recurrence for TensorFlow: one `tf.while_loop`, with a
hand-written backward pass.

For a fixed residual and an activation with a known derivative the
recurrence is a `tf.custom_gradient`: the forward loop keeps every state and
activation, the backward loop carries only the state's gradient, and the
recurrent kernel's gradient is one `(T*B, N)^T (T*B, N)` product after the
loop, in TensorFlow's graph rather than in XLA (7 ms against XLA's 12 at
T = 784, batch 64, 128 units on a 2-core Intel Xeon: a training step
69 -> 61 ms, SimpleRNN's 65). Both loops run `_wcrnn_step` (the step and
its backward pass, written once with `keras.ops`). Where no gradient tape
records the call (`predict`, a call outside any tape) a third loop keeps
nothing but what it returns, as the JAX and torch kernels do at inference
(T = 784, identity: 24 -> 20 ms, peak RSS 963 -> 936 MB); a graph traced
so and differentiated later gets its gradient by running the forward loop
then. A trainable residual, or an activation without a known derivative,
runs one `tf.while_loop` with TensorFlow's autodiff through it.

The input projection `x_t @ U + b` is formed per step inside the forward
loop (as Keras' `SimpleRNN` does), not as a (batch, T, units) tensor before
it; its gradients (dU, db, dx) are one product each after the backward loop.
The loops are XLA-compiled `tf.function`s (one set per configuration,
cached), called from the custom gradient; Keras does not XLA-compile a
train step on a CPU-only TensorFlow (`jit_compile="auto"` is off there), so
the rest of the step runs as a graph around them. Measured on 2 CPU cores
(AMD EPYC, T = 784, 128 units, batch 64, one feature; layer forward and
backward in a `tf.function`): this design ~160 ms against SimpleRNN's ~135;
with the projection formed before the loop ~190-230 (a (B*T, 1) @ (1, N)
matmul and its gradient cost ~20 ms each in a TF graph); projection and
all gradients inside XLA ~215. The loops as graph functions without XLA
(where TensorFlow's oneDNN matmuls would run) measured worse on both CPUs
tried: ~400 ms on the AMD EPYC, and on a 2-core Intel Xeon with AVX-512
and oneDNN on, a training step with a rotation 2.5x (T = 100) and 2.8x
(T = 784) SimpleRNN's against 1.1x and 1.3x for the XLA loops: a TF graph
while-loop pays per op per step, and the step here has more ops than
SimpleRNN's. So XLA is used on every CPU; BENCHMARKS.md has the current
figures. Called eagerly (outside any `tf.function`), the recurrence runs as
one cached `tf.function` per configuration instead of op by op.
"""

import tensorflow as tf

from keras_residual import _activations
from keras_residual._keras_compat import quiet_tracing
from keras_residual._keras_compat import tape_may_record
from keras_residual import residuals as residuals_lib
from keras_residual.layers import _wcrnn_kernels
from keras_residual.layers import _wcrnn_step

_EAGER = {}
_COMPILED = {}


# Keras' loop is a graph tf.while_loop that pays per op, and the gradient of
# a rotation's gather is costly there: a rotation steps as h @ R^T (a
# training step at T = 100: 12.5 ms against 28 elementwise and 10.5 for
# SimpleRNN; see `_wcrnn_kernels`).
CELL_DENSE_FORMS = True


def supports(activation, residual, residual_trainable):
    return True


def _time_major(sequences, go_backwards):
    xs = tf.transpose(sequences, (1, 0, 2))
    return tf.reverse(xs, axis=[0]) if go_backwards else xs


def _forward(xs, kernel, bias, h0, W, coupling, activation, form, states=True, activations=False):
    """`(h_T, all states (T+1, B, N), all activations (T, B, N))`, the last
    two None unless asked for."""
    steps = tf.shape(xs)[0]
    inputs = tf.TensorArray(xs.dtype, size=steps, element_shape=xs.shape[1:]).unstack(xs)
    hs = tf.TensorArray(xs.dtype, size=steps + 1 if states else 0, element_shape=h0.shape)
    ys = tf.TensorArray(xs.dtype, size=steps if activations else 0, element_shape=h0.shape)
    if states:
        hs = hs.write(0, h0)

    def body(t, h, hs, ys):
        xp = _wcrnn_kernels.project(inputs.read(t), kernel, bias)  # this step's
        h_new, y = _wcrnn_step.step(xp, h, W, coupling, activation, form)
        h_new = tf.ensure_shape(h_new, h.shape)
        if states:
            hs = hs.write(t + 1, h_new)
        if activations:
            ys = ys.write(t, y)
        return t + 1, h_new, hs, ys

    _, h_last, hs, ys = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), h0, hs, ys),
        maximum_iterations=steps,
    )
    return h_last, (hs.stack() if states else None), (ys.stack() if activations else None)


def _backward(grad_out, hs, ys, W_t, coupling, derivative, form, sequence):
    """(dL/da (T, B, N), dL/dh0) from the gradient of the output:
    of all states h_1..h_T (T, B, N) if `sequence`, else of h_T (B, N).
    `W_t` is the recurrent kernel transposed outside XLA (see
    `_wcrnn_step.backward`)."""
    steps = tf.shape(ys)[0]
    grad_a = tf.TensorArray(ys.dtype, size=steps, element_shape=ys.shape[1:])

    def body(i, g, grad_a):
        t = steps - 1 - i
        g_prev, da = _wcrnn_step.backward(g, hs[t], ys[t], W_t, coupling, derivative, form)
        if sequence:
            # dL/dh_{t-1} from the output at step t-1 (none before step 0).
            g_prev = g_prev + grad_out[tf.maximum(t - 1, 0)] * tf.cast(t > 0, g_prev.dtype)
        g_prev = tf.ensure_shape(g_prev, g.shape)
        return i + 1, g_prev, grad_a.write(t, da)

    g_last = tf.ensure_shape(grad_out[steps - 1] if sequence else grad_out, hs.shape[1:])
    _, g0, grad_a = tf.while_loop(
        lambda i, *_: i < steps, body, (tf.constant(0), g_last, grad_a),
        maximum_iterations=steps,
    )
    return grad_a.stack(), g0


def _compiled(config, form, has_bias, sequence):
    """The XLA-compiled loops of one configuration: the forward loop that
    keeps what the backward loop reads, the backward loop, and the inference
    loop that keeps only what it returns."""
    coupling, activation, derivative, _ = config
    key = (coupling, activation, derivative, form.key, has_bias, sequence)
    if key not in _COMPILED:
        form_type = form

        def forward(xs, kernel, bias, h0, W, *tensors):
            _, hs, ys = _forward(xs, kernel, bias if has_bias else None, h0, W, coupling,
                                 activation, form_type.replace(tensors), activations=True)
            return hs, ys

        def backward(grad_out, hs, ys, W_t, *tensors):
            return _backward(grad_out, hs, ys, W_t, coupling, derivative,
                             form_type.replace(tensors), sequence)

        def inference(xs, kernel, bias, h0, W, *tensors):
            h_last, hs, _ = _forward(xs, kernel, bias if has_bias else None, h0, W, coupling,
                                     activation, form_type.replace(tensors), states=sequence)
            return hs[1:] if sequence else h_last

        _COMPILED[key] = tuple(
            _quiet(tf.function(f, jit_compile=True, reduce_retracing=True))
            for f in (forward, backward, inference)
        )
    return _COMPILED[key]


def _recurrence(xs, kernel, bias, h0, W, tensors, config, return_sequences):
    """The states h_1..h_T (T, B, N) if `return_sequences`, else h_T, with the
    hand-written gradient when the configuration has a derivative, else
    TensorFlow's. Where no gradient tape can record the call (inference),
    one loop that keeps no state or activation for a backward pass."""
    coupling, activation, derivative, form = config
    if derivative is None:
        h_last, hs, _ = _forward(xs, kernel, bias, h0, W, coupling, activation,
                                 form.replace(tensors), states=return_sequences)
        return hs[1:] if return_sequences else h_last
    has_bias = bias is not None
    forward, backward, inference = _compiled(config, form, has_bias, return_sequences)
    bias_in = bias if has_bias else tf.zeros((), xs.dtype)
    recording = tape_may_record()

    @tf.custom_gradient
    def fused(xs, kernel, bias_in, h0, W):
        if recording:
            kept = forward(xs, kernel, bias_in, h0, W, *tensors)
            out = kept[0][1:] if return_sequences else kept[0][-1]
        else:
            # No tape records this call (inference): a loop that keeps
            # nothing for a backward pass; should a caller differentiate it
            # after all (a tf.function traced outside any tape, then called
            # under one), the gradient runs the forward loop again.
            kept = None
            out = inference(xs, kernel, bias_in, h0, W, *tensors)

        def grad(grad_out):
            hs, ys = kept if kept is not None else forward(xs, kernel, bias_in, h0, W, *tensors)
            grad_a, g0 = backward(grad_out, hs, ys, tf.transpose(W), *tensors)
            # dW outside XLA: TensorFlow's graph matmul (oneDNN or Eigen)
            # takes 7 ms for this (50176, 128)^T (50176, 128) product where
            # XLA's took 12 (T = 784, batch 64, Intel Xeon).
            grad_w = _wcrnn_step.recurrent_kernel_backward(hs[:-1], grad_a)
            grad_xs, grad_kernel, grad_bias = _wcrnn_step.projection_backward(
                grad_a, xs, kernel, has_bias)
            if grad_bias is None:
                grad_bias = tf.zeros_like(bias_in)
            return grad_xs, grad_kernel, grad_bias, g0, grad_w

        return out, grad

    return fused(xs, kernel, bias_in, h0, W)


def wcrnn_scan(sequences, kernel, bias, h0, recurrent_kernel, coupling, activation, residual,
               go_backwards=False, return_sequences=True, residual_trainable=False):
    form = residuals_lib.form_of(residual, sequences.dtype)
    derivative = _activations.derivative(activation)
    custom = derivative is not None and not (residual_trainable and form.tensors)
    tensors = tuple(tf.stop_gradient(t) for t in form.tensors) if custom else form.tensors
    config = (float(coupling), activation, derivative if custom else None, form)
    xs = _time_major(sequences, go_backwards)
    sequence = bool(return_sequences)
    if tf.executing_eagerly():
        out = _eager(config, len(tensors), bias is not None, sequence, tape_may_record())(
            xs, kernel, bias, h0, recurrent_kernel, *tensors)
    else:
        out = _recurrence(xs, kernel, bias, h0, recurrent_kernel, tensors, config, sequence)
    if not sequence:
        return out, None, out
    h_last = out[-1]
    return h_last, tf.transpose(out, (1, 0, 2)), h_last


def _eager(config, count, has_bias, return_sequences, recording):
    """A cached graph-mode `tf.function` of the recurrence for eager calls,
    one for calls a gradient tape records and one for the others (traced
    outside a tape, a function runs the inference loop, and its gradient,
    if asked for after all, would run the forward loop a second time)."""
    coupling, activation, derivative, form = config
    key = (coupling, activation, derivative, form.key, count, has_bias, return_sequences,
           recording)
    if key not in _EAGER:
        _EAGER[key] = _quiet(tf.function(
            lambda xs, kernel, bias, h0, W, *tensors: _recurrence(
                xs, kernel, bias, h0, W, tensors, config, return_sequences),
            reduce_retracing=True,
        ))
    return _EAGER[key]


def _quiet(function):
    # Each configuration gets its own function, cached here, so first calls
    # trace by design: no "frequent retracing" warning.
    return quiet_tracing(function)
