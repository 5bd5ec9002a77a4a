"""The state the Lyapunov loop carries from step to step, with its compensated log-sum."""

from typing import NamedTuple

from keras import ops

from keras_residual.dynamics.lyapunov import cells


class Carry(NamedTuple):
    """What one step of the QR loop hands the next (`loop.step_function`).

    Fields:
        state: the cell's concatenated states s_t, (batch, S).
        frame: Q_t, the k tangent vectors, (batch, S, k); orthonormal right
            after a QR, J Q between QRs.
        log_sum: sum of log (R_t)_ii over the QRs after the warm-up, (batch, k).
        compensation: the low-order bits the running sum dropped (Neumaier);
            the sum is `log_sum + compensation` (`sums`).
        spread_rate: per step, the largest spread of log (R_t)_ii over the
            columns at the last QR (float32 scalar; +inf before the first).
        last_qr: the step of the last QR (int32 scalar).
        next_qr: the step of the next QR when the interval is "auto".
        num_qr: the number of QRs so far.

    The last three are the schedule's counters (`COUNTERS`): Python integers
    in PyTorch's eager loop, tensors in the compiled ones.
    """

    state: object
    frame: object
    log_sum: object
    compensation: object
    spread_rate: object
    last_qr: object
    next_qr: object
    num_qr: object

    COUNTERS = ("last_qr", "next_qr", "num_qr")

    @property
    def sums(self):
        """The compensated sums of log (R_t)_ii, (batch, k)."""
        return self.log_sum + self.compensation


def sum_dtype(qr_dtype):
    """The dtype of the summed logs (and of the QRs, unless `qr_dtype` is
    "auto"): `qr_dtype`, float64 for "auto"."""
    return "float64" if qr_dtype == "auto" else qr_dtype


def initial_carry(h0, k, seed, dtype, qr_dtype):
    """The first carry for initial states `h0` (batch, S): Q_0 the seeded
    frame (`cells.initial_frame`), zero sums, no QR yet."""
    batch, state_size = ops.shape(h0)[0], ops.shape(h0)[1]
    frame = ops.convert_to_tensor(cells.initial_frame(state_size, k, seed, dtype), dtype=dtype)
    sums = sum_dtype(qr_dtype)
    return Carry(
        state=h0,
        frame=ops.broadcast_to(frame[None], (batch, state_size, k)),
        log_sum=ops.zeros((batch, k), dtype=sums),
        compensation=ops.zeros((batch, k), dtype=sums),
        spread_rate=ops.convert_to_tensor(float("inf"), dtype="float32"),
        last_qr=ops.convert_to_tensor(0, dtype="int32"),
        next_qr=ops.convert_to_tensor(1, dtype="int32"),
        num_qr=ops.convert_to_tensor(0, dtype="int32"),
    )


def compensated_sum(total, compensation, value):
    """Neumaier's summation: `(total + value, compensation)`, with the
    low-order bits the addition drops collected in the compensation."""
    new = total + value
    big = ops.abs(total) >= ops.abs(value)
    lost = ops.where(big, (total - new) + value, (value - new) + total)
    # inf/nan stay as they are (inf - inf would make the compensation NaN).
    lost = ops.where(ops.isfinite(new), lost, ops.zeros_like(lost))
    return new, compensation + lost
