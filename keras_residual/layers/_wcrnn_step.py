"""One step of a weakly coupled residual RNN, its tangent and its backward pass.

Written once, with `keras.ops`, for every place that steps a WCRNN: the cell
(`WCRNNCell.call`, `WCRNNCell.tangent`), the fused kernels (the JAX and
TensorFlow loops and their hand-written backward passes) and, through the
cell's tangent, the Lyapunov code. In Keras' row convention, with `xp` the
input projection `x_t @ U + b`, `W` the recurrent kernel and `form` the
residual's form (`kr.residuals.ResidualForm`):

    a_t = xp_t + h_{t-1} @ W
    y_t = sigma(a_t)
    h_t = rho(h_{t-1}) + coupling * y_t                                 (step)

    J_t Q = J_rho(h_{t-1}) Q + coupling * diag(sigma'(a_t)) (W^T Q)    (tangent)

    da_t      = g * coupling * sigma'(a_t)                              (backward,
    g_{t-1}   = g @ J_rho(h_{t-1}) + da_t @ W^T                          g = dL/dh_t)

sigma' is evaluated from the activation alone, `derivative(y, y)`: each
activation with a known derivative (tanh, sigmoid, relu, linear; see
`keras_residual._activations`) has one that is a function of `y = sigma(a)`
(relu: `y > 0`), so the loops keep `y` and never `a`.
"""

from keras import ops

from keras_residual import _ops


def step(xp, h, recurrent_kernel, coupling, activation, form, recurrent_input=None):
    """`(h_t, y_t)`: the new state and the activation `sigma(a_t)`.

    `recurrent_input` replaces `h` in `h @ W` (the cell's recurrent dropout
    drops the state entering `W`, never the residual path).
    """
    recurrent_input = h if recurrent_input is None else recurrent_input
    y = activation(_ops.matmul_add(recurrent_input, recurrent_kernel, xp))
    return form.apply_add(h, y, coupling), y


def tangent(Q, h, y, recurrent_kernel, coupling, derivative, form, input_tangent=None):
    """`J_t Q` for column blocks `Q` (batch, N, k) at the step from `h`.

    `y` is the step's activation (sigma' is evaluated from it, as in
    `backward`). `input_tangent` (batch, N, k), when given, is the projected
    input perturbation `U^T X` of a perturbation `X` of the inputs (stacked
    cells), added to `W^T Q` before the slope.
    """
    product = ops.einsum("mi,bmk->bik", recurrent_kernel, Q)
    if input_tangent is not None:
        product = product + input_tangent
    Z = (coupling * derivative(y, y))[:, :, None] * product
    if form.is_zero:
        return Z
    return Z + form.apply_columns(Q, h)


def backward(g, h, y, recurrent_kernel_t, coupling, derivative, form):
    """`(g_{t-1}, da_t)` from `g = dL/dh_t` (the state's total gradient).

    `recurrent_kernel_t` is `W^T`, transposed once by the caller: a
    transpose inside a compiled loop is folded into the product, which
    XLA's CPU dot runs slower than on a transposed copy (T = 784 steps of
    (64, 128) x (128, 128), 2-core Intel Xeon: 22.4 against 21.3 ms).
    """
    da = g * (coupling * derivative(y, y))
    back = _ops.matmul(da, recurrent_kernel_t)
    if form.is_zero:
        return back, da
    return back + form.apply_transpose(g, h), da


def projection_backward(grad_a, xs, kernel, has_bias):
    """`(dL/dxs, dL/dU, dL/db)` of the input projection `xp_t = x_t @ U + b`
    from `grad_a = dL/da` (T, B, N) for time-major `xs` (T, B, features):
    one product each for all steps (the fused kernels that form `xp_t` per
    step). `dL/db` is None without a bias.

    Each is a product of the (T*B, ...) flattened tensors, the bias's a
    product with a row of ones: on TensorFlow's graph (oneDNN) these cost
    0.9 ms each against 2.2 ms for `sum(grad_a, axis=(0, 1))` and 1.1-1.3 ms
    for the 3-D einsums (T = 784, batch 64, 128 units, 1 feature, Intel Xeon).
    """
    features, units = ops.shape(kernel)  # a traced width may be unknown until run
    flat_a = ops.reshape(grad_a, (-1, units))
    flat_x = ops.reshape(xs, (-1, features))
    grad_kernel = ops.einsum("nf,nu->fu", flat_x, flat_a)
    grad_xs = ops.reshape(_ops.matmul(flat_a, ops.transpose(kernel)), ops.shape(xs))
    grad_bias = None
    if has_bias:
        ones = ops.ones((1, ops.shape(flat_a)[0]), dtype=flat_a.dtype)
        grad_bias = _ops.matmul(ones, flat_a)[0]
    return ops.cast(grad_xs, xs.dtype), ops.cast(grad_kernel, kernel.dtype), grad_bias


def recurrent_kernel_backward(states, grad_a):
    """`dL/dW = sum_t h_{t-1}^T da_t` for all steps at once: one
    `(T*B, N)^T (T*B, N)` product of the input states `states` (T, B, N) and
    `grad_a = dL/da` (T, B, N), where a loop would accumulate it step by step."""
    units = ops.shape(grad_a)[-1]
    return ops.einsum("ni,nj->ij", ops.reshape(states, (-1, units)),
                      ops.reshape(grad_a, (-1, units)))
