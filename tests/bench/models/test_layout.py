"""Layouts: a mixer name or BASE+TOP:K, parsed, printed back as written, and refused with one line."""

import dataclasses

import pytest

import mixers
from bench.models import Layout, LayoutError, parse_layout, validate_layout

NAMES = mixers.available()


@pytest.mark.parametrize("name", NAMES)
def test_a_plain_name_round_trips_and_fills_every_layer(name):
    layout = parse_layout(name)
    assert str(layout) == name
    assert layout.is_plain and layout.top is None and layout.top_layers == 0
    assert layout.names == (name,)
    assert layout.per_layer(3) == [name] * 3


def test_fnet_hybrid_puts_attention_in_the_last_two_layers():
    layout = parse_layout("fft+attention:2")
    assert (layout.base, layout.top, layout.top_layers) == ("fft", "attention", 2)
    assert str(layout) == "fft+attention:2"
    assert not layout.is_plain
    assert layout.names == ("fft", "attention")
    assert layout.per_layer(5) == ["fft"] * 3 + ["attention"] * 2
    assert layout.per_layer(2) == ["attention"] * 2


def test_names_with_dashes_parse():
    layout = parse_layout("dft-matrix+attention-naive:1")
    assert (layout.base, layout.top, layout.top_layers) == ("dft-matrix", "attention-naive", 1)
    assert str(layout) == "dft-matrix+attention-naive:1"


@pytest.mark.parametrize("text", ["", "fft+", "fft+attention", "fft+attention:0", "fft+attention:x",
                                  "a+b+c:1", "fft:2", "+attention:2", "fft+:2", "fft+attention:02",
                                  "fft+attention:-1", "fft+attention: 2", "fft+attention:2:3",
                                  "fft+attention:١"])
def test_malformed_text_is_refused_naming_the_form(text):
    with pytest.raises(LayoutError) as error:
        parse_layout(text)
    message = str(error.value)
    assert "\n" not in message
    assert "BASE+TOP:K" in message


def test_a_layout_naming_one_mixer_twice_is_refused():
    with pytest.raises(LayoutError, match="'fft' twice"):
        parse_layout("fft+fft:1")


@pytest.mark.parametrize("text", ["nope", "fft+nope:1", "nope+fft:1", "FFT", "fft "])
def test_unknown_mixers_are_refused_listing_the_available(text):
    with pytest.raises(LayoutError) as error:
        parse_layout(text)
    message = str(error.value)
    assert "\n" not in message
    assert "unknown mixer" in message and ", ".join(NAMES) in message


def test_layout_error_is_a_value_error():
    assert issubclass(LayoutError, ValueError)


def test_more_top_layers_than_layers_is_refused_naming_both_numbers():
    layout = parse_layout("fft+attention:3")
    with pytest.raises(LayoutError) as error:
        layout.per_layer(2)
    assert "3" in str(error.value) and "2" in str(error.value)
    with pytest.raises(LayoutError):
        validate_layout("fft+attention:3", layers=2)
    assert validate_layout("fft+attention:3", layers=3) == layout
    assert validate_layout("fft+attention:3") == layout


def test_zero_layers_is_refused():
    with pytest.raises(LayoutError, match="at least 1 layer"):
        parse_layout("fft").per_layer(0)


def test_layouts_are_frozen_values():
    layout = parse_layout("fft+attention:2")
    assert layout == Layout("fft", "attention", 2) and hash(layout) == hash(Layout("fft", "attention", 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.top_layers = 3
    assert parse_layout(layout) is layout


@pytest.mark.parametrize("top, top_layers", [("attention", 0), (None, 2), ("attention", -1)])
def test_an_inconsistent_layout_cannot_be_constructed(top, top_layers):
    with pytest.raises(LayoutError):
        Layout("fft", top, top_layers)


@pytest.mark.parametrize("top, top_layers", [("attention", 0), (None, 2), ("attention", -1)])
def test_a_top_mixer_without_top_layers_or_the_reverse_is_refused_in_one_line(top, top_layers):
    with pytest.raises(LayoutError) as refused:
        Layout("fft", top, top_layers)
    assert str(refused.value) == ("a layout has a top mixer exactly when it has top layers (≥ 1), "
                                  f"got top={top!r}, top_layers={top_layers}")


@pytest.mark.parametrize("text", ["nosuch", "nosuch+fft:1", "fft+nosuch:1"])
def test_an_unknown_mixer_is_refused_naming_the_whole_layout(text):
    with pytest.raises(LayoutError) as refused:
        parse_layout(text)
    assert str(refused.value) == (f"unknown mixer 'nosuch' in layout {text!r} "
                                  f"(available: {', '.join(mixers.available())})")
