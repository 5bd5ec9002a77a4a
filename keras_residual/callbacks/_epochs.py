"""When the measuring callbacks measure: one meaning of `every_n_epochs`."""


def measured(epoch, every_n_epochs, params=None):
    """Whether a callback with `every_n_epochs=n` measures at the end of
    `epoch` (0-based): at the end of every n-th epoch (n - 1, 2n - 1, ...)
    and of the last epoch of the fit (`params["epochs"]`, as Keras gives it
    to callbacks), so that a fit always ends with a measurement: with
    n = 2 and 5 epochs, epochs 1, 3 and 4.
    """
    last = (params or {}).get("epochs")
    return (epoch + 1) % every_n_epochs == 0 or (last is not None and epoch + 1 == last)
