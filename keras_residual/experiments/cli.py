"""Command-line pieces shared by the example and experiment scripts."""

import argparse


def comma_list(item=str, choices=None):
    """An `argparse` `type=` for a comma-separated list, e.g. `--radii 0.9,1,1.02`.

    Args:
        item: converts one stripped entry (`str`, `int`, `float` or any
            callable raising `ValueError` / `TypeError` on a bad entry).
        choices: if given, every converted entry must be one of these.

    Returns:
        A function `text -> list`. Empty entries (`"a,,b"`, a trailing comma)
        are skipped; an entry that does not convert, one outside `choices`, or
        no entry at all is an `argparse.ArgumentTypeError`, which `argparse`
        reports as a usage error naming the option. String defaults go through
        it too, so `default="0.9,1.0"` arrives as `[0.9, 1.0]`.
    """
    if not callable(item):
        raise TypeError(f"comma_list: `item` must be callable (str, int, float, ...); "
                        f"received {item!r}")
    allowed = None if choices is None else tuple(choices)
    kind = getattr(item, "__name__", "value")

    def parse(text):
        values = []
        for entry in str(text).split(","):
            entry = entry.strip()
            if not entry:
                continue
            try:
                value = item(entry)
            except (TypeError, ValueError):
                raise argparse.ArgumentTypeError(f"{entry!r} is not a valid {kind}") from None
            if allowed is not None and value not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{entry!r} is not one of {', '.join(str(a) for a in allowed)}")
            values.append(value)
        if not values:
            raise argparse.ArgumentTypeError(f"no value given in {text!r}; give a comma-separated "
                                             f"list of at least one {kind}")
        return values

    parse.__name__ = f"comma-separated {kind}"
    return parse
