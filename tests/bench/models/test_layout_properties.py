"""Property tests of layout parsing (Hypothesis): every valid BASE+TOP:K round-trips."""

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

import mixers  # noqa: E402
from bench.models import LayoutError, parse_layout  # noqa: E402

NAMES = mixers.available()
pairs = st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES)).filter(lambda pair: pair[0] != pair[1])


@given(pair=pairs, top_layers=st.integers(1, 10 ** 6))
def test_every_valid_hybrid_round_trips(pair, top_layers):
    text = f"{pair[0]}+{pair[1]}:{top_layers}"
    layout = parse_layout(text)
    assert str(layout) == text
    assert parse_layout(str(layout)) == layout
    assert (layout.base, layout.top, layout.top_layers) == (*pair, top_layers)


@given(pair=pairs, top_layers=st.integers(1, 40), layers=st.integers(1, 40))
def test_per_layer_puts_top_in_exactly_the_last_k_layers_or_refuses(pair, top_layers, layers):
    layout = parse_layout(f"{pair[0]}+{pair[1]}:{top_layers}")
    if top_layers > layers:
        with pytest.raises(LayoutError, match=f"last {top_layers} layers.*only {layers} layers"):
            layout.per_layer(layers)
        return
    names = layout.per_layer(layers)
    assert len(names) == layers
    assert names[layers - top_layers:] == [pair[1]] * top_layers
    assert names[:layers - top_layers] == [pair[0]] * (layers - top_layers)


@given(text=st.text(alphabet="fta+:-0123456789 x", max_size=20))
def test_any_text_parses_to_a_layout_that_prints_back_or_is_refused_in_one_line(text):
    try:
        layout = parse_layout(text)
    except LayoutError as error:
        assert "\n" not in str(error)
    else:
        assert str(layout) == text
