import argparse

import pytest

from keras_residual import experiments as kx


def _parser(**kwargs):
    parser = argparse.ArgumentParser(prog="script")
    parser.add_argument("--values", **kwargs)
    return parser


def test_comma_list_converts_and_skips_empty_entries():
    assert kx.comma_list(float)("0.9, 1,,1.02,") == [0.9, 1.0, 1.02]
    assert kx.comma_list(int, (20, 56))("56,20") == [56, 20]
    assert kx.comma_list(str, ("a", "b"))(" b ,a") == ["b", "a"]


@pytest.mark.parametrize("text, message", [
    ("0.9,x", "'x' is not a valid float"),
    ("", "no value given"),
    (" , ", "no value given"),
])
def test_comma_list_bad_entries(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kx.comma_list(float)(text)


def test_comma_list_choices():
    with pytest.raises(argparse.ArgumentTypeError, match="'21' is not one of 20, 56, 110"):
        kx.comma_list(int, (20, 56, 110))("20,21")
    with pytest.raises(argparse.ArgumentTypeError, match="'dense' is not one of plain, pnnh"):
        kx.comma_list(str, ("plain", "pnnh"))("dense")


def test_comma_list_in_argparse(capsys):
    parser = _parser(type=kx.comma_list(float), default="0.5,2")
    assert parser.parse_args([]).values == [0.5, 2.0]  # string defaults are parsed too
    assert parser.parse_args(["--values", "3"]).values == [3.0]
    with pytest.raises(SystemExit):
        parser.parse_args(["--values", "1,two"])
    assert "argument --values: 'two' is not a valid float" in capsys.readouterr().err


def test_comma_list_item_must_be_callable():
    with pytest.raises(TypeError, match="`item` must be callable"):
        kx.comma_list("float")
