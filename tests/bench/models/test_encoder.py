"""Encoder: embeddings, blocks laid out by a layout, and heads, from every registered mixer."""

import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import mixers
from bench.models import (DEFAULT_LAYERS, DEFAULT_VOCAB, SHAPES, Encoder, default_ffn, mlm_count, param_count,
                          parse_layout)

NAMES = mixers.available()
FFN = 128
LAYERS = 2
VOCAB = 50
BATCH = 2
PLANTED = Path(__file__).resolve().parents[2] / "plugins" / "planted_mixers.py"


def tokens(seq_len, seed=0):
    return torch.randint(0, VOCAB, (BATCH, seq_len), generator=torch.Generator().manual_seed(seed))


def mlm_loss(logits):
    targets = torch.randint(0, VOCAB, logits.shape[:-1], generator=torch.Generator().manual_seed(1))
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def check_encoder_trains(encoder, inputs, step):
    m = encoder.mlm_positions.numel()
    before = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    logits = step(encoder, inputs, mlm_loss)
    assert logits.shape == (BATCH, m, VOCAB) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
        assert torch.isfinite(p).all() and not torch.equal(before[name], p), name
    with torch.no_grad():
        assert torch.isfinite(encoder(inputs)).all()


@pytest.mark.parametrize("name", NAMES)
def test_encoder_of_every_mixer_runs_and_trains(name, small, step):
    seq_len, dim = small(name)
    torch.manual_seed(0)
    encoder = Encoder(name, seq_len, dim, LAYERS, FFN, VOCAB)
    assert [type(block.mixer) for block in encoder.blocks] == [mixers.get(name)] * LAYERS
    check_encoder_trains(encoder, tokens(seq_len), step)
    assert param_count("encoder", name, seq_len, dim, layers=LAYERS, ffn=FFN, vocab=VOCAB) == \
        sum(p.numel() for p in encoder.parameters())


def test_hybrid_encoder_has_top_in_the_last_layers_and_trains(step):
    torch.manual_seed(0)
    encoder = Encoder("fft+attention:2", 16, 64, 3, FFN, VOCAB)
    assert [type(block.mixer) for block in encoder.blocks] == [mixers.get("fft"), mixers.get("attention"),
                                                                mixers.get("attention")]
    assert str(encoder.layout) == "fft+attention:2"
    check_encoder_trains(encoder, tokens(16), step)
    assert param_count("encoder", "fft+attention:2", 16, 64, layers=3, ffn=FFN, vocab=VOCAB) == \
        sum(p.numel() for p in encoder.parameters())


def test_hybrid_with_more_top_layers_than_layers_is_refused():
    with pytest.raises(ValueError, match="last 3 layers.*only 2 layers"):
        Encoder("fft+attention:3", 16, 64, 2, FFN, VOCAB)


CONFIGS = {
    "pre-norm": dict(norm="pre"),
    "peri-norm": dict(norm="peri"),
    "shift": dict(shift=True),
    "tokens-head": dict(head="tokens", num_classes=7),
    "sequence-head": dict(head="sequence", num_classes=3),
    "no-head": dict(head="none"),
    "vectors": dict(head="none", vocab=0),
    "all-positions": dict(mlm_fraction=1.0),
    "head-dim-32": dict(mixer_options={"head_dim": 32, "expansion": 3}),
}


@pytest.mark.parametrize("layout", ["attention", "mlp-mixer+attention:1"])
@pytest.mark.parametrize("config", list(CONFIGS), ids=str)
def test_parameters_equal_the_analytic_count(config, layout):
    options = {"vocab": VOCAB, **CONFIGS[config]}
    vocab = options.pop("vocab")
    encoder = Encoder(layout, 16, 64, LAYERS, FFN, vocab, **options)
    assert param_count("encoder", layout, 16, 64, layers=LAYERS, ffn=FFN, vocab=vocab, **options) == \
        sum(p.numel() for p in encoder.parameters())


def test_bert_base_parameter_count_is_bert_bases():
    # Hugging Face's BertModel for bert-base-uncased has 109,482,240 parameters; BERT's MLM model drops
    # the pooler (768² + 768) and adds the head's transform (768² + 768), its LayerNorm (2·768) and the
    # decoder bias (30,522); ours has no token-type embeddings (2·768).
    shape = SHAPES["base"]
    expected = 109_482_240 - (768 ** 2 + 768) + (768 ** 2 + 768) + 2 * 768 + 30_522 - 2 * 768
    count = param_count("encoder", "attention", 512, shape.dim, layers=shape.layers, ffn=shape.ffn, vocab=30522,
                        mixer_options={"head_dim": shape.head_dim})
    assert count == expected == 109_512_762
    assert abs(count - 110e6) / 110e6 < 0.02


def test_named_shapes_and_defaults():
    assert {name: (s.layers, s.dim, s.ffn, s.heads) for name, s in SHAPES.items()} == {
        "tiny": (2, 128, 512, 2), "small": (4, 512, 2048, 8), "base": (12, 768, 3072, 12),
        "large": (24, 1024, 4096, 16)}
    assert all(shape.head_dim == 64 for shape in SHAPES.values())
    assert all(shape.ffn == default_ffn(shape.dim) for shape in SHAPES.values())
    assert (DEFAULT_LAYERS, DEFAULT_VOCAB) == (12, 32000)


def test_mlm_head_projects_evenly_spread_positions_through_the_tied_embedding():
    torch.manual_seed(0)
    encoder = Encoder("fft", 20, 16, 1, 32, VOCAB, mlm_fraction=0.15)
    assert mlm_count(20, 0.15) == 3
    assert encoder.mlm_positions.tolist() == [0, 6, 13]
    assert Encoder("fft", 20, 16, 1, 32, VOCAB, mlm_fraction=1.0).mlm_positions.tolist() == list(range(20))
    assert Encoder("fft", 20, 16, 1, 32, VOCAB, mlm_fraction=0.001).mlm_positions.tolist() == [0]
    inputs = tokens(20)
    logits = encoder(inputs)
    assert logits.shape == (BATCH, 3, VOCAB)
    hidden = encoder.embed(inputs)
    for block in encoder.blocks:
        hidden = block(hidden)
    picked = hidden[:, [0, 6, 13]]
    transformed = F.layer_norm(F.gelu(picked @ encoder.head_transform.weight.T + encoder.head_transform.bias),
                               (16,), encoder.head_norm.weight, encoder.head_norm.bias)
    torch.testing.assert_close(logits, transformed @ encoder.token_embedding.weight.T + encoder.head_bias)
    # tied: the loss reaches embedding rows of tokens that are not in the input only through the decoder
    mlm_loss(logits).backward()
    unused = sorted(set(range(VOCAB)) - set(inputs.flatten().tolist()))
    assert unused and encoder.token_embedding.weight.grad[unused].abs().sum() > 0


def test_classifier_and_no_heads_have_their_shapes():
    inputs = tokens(16)
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB, head="tokens", num_classes=7)(inputs).shape == (BATCH, 16, 7)
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB, head="sequence", num_classes=3)(inputs).shape == (BATCH, 3)
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB, head="none")(inputs).shape == (BATCH, 16, 64)


def test_sequence_head_is_a_classifier_of_the_mean():
    encoder = Encoder("fft", 16, 64, 1, FFN, VOCAB, head="sequence", num_classes=3)
    inputs = tokens(16)
    hidden = encoder.blocks[0](encoder.embed(inputs))
    torch.testing.assert_close(encoder(inputs), encoder.classifier(hidden.mean(dim=1)))


@pytest.mark.parametrize("dtype", mixers.CPU_DTYPES, ids=str)
def test_vector_input_encoder_keeps_shape_and_dtype(dtype):
    encoder = Encoder("fft+attention:1", 16, 64, 2, FFN, 0, head="none", norm="pre").to(dtype)
    x = torch.randn(BATCH, 16, 64, dtype=dtype)
    out = encoder(x)
    assert out.shape == x.shape and out.dtype == dtype and torch.isfinite(out).all()
    assert not hasattr(encoder, "token_embedding")


@pytest.mark.parametrize("head", ["mlm", "tokens", "sequence"])
def test_vector_input_with_a_head_is_refused(head):
    with pytest.raises(ValueError, match="vocab=0 .* head must be 'none'"):
        Encoder("fft", 16, 64, 1, FFN, 0, head=head, num_classes=2)


@pytest.mark.parametrize("options, message", [
    (dict(head="softmax"), "unknown head 'softmax' \\(allowed: mlm, tokens, sequence, none\\)"),
    (dict(head="tokens"), "num_classes ≥ 1"),
    (dict(head="sequence", num_classes=0), "num_classes ≥ 1"),
    (dict(mlm_fraction=0.0), "mlm_fraction must be in \\(0, 1\\]"),
    (dict(mlm_fraction=1.5), "mlm_fraction must be in \\(0, 1\\]"),
    (dict(norm="sandwich"), "unknown norm"),
])
def test_impossible_encoders_are_refused_in_one_line(options, message):
    with pytest.raises(ValueError, match=message) as error:
        Encoder("fft", 16, 64, 1, FFN, VOCAB, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("size", ["seq_len", "dim", "layers", "ffn"])
def test_a_size_below_one_is_refused_by_its_name(size):
    sizes = dict(layout="fft", seq_len=16, dim=64, layers=1, ffn=FFN, vocab=VOCAB)
    with pytest.raises(ValueError) as error:
        Encoder(**{**sizes, size: 0})
    assert str(error.value) == f"{size} must be at least 1, got {size}=0"


def test_a_negative_vocabulary_is_refused_and_a_head_of_one_class_is_allowed():
    with pytest.raises(ValueError) as error:
        Encoder("fft", 16, 64, 1, FFN, -1, head="none")
    assert str(error.value) == "vocab must be ≥ 0 (0: the encoder takes vectors, not token ids), got vocab=-1"
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB, head="sequence", num_classes=1)(torch.zeros(2, 16).long()).shape == (
        2, 1)


def test_inputs_of_the_wrong_length_are_refused():
    with pytest.raises(ValueError, match="expected inputs of \\(batch, 16\\), got shape \\(2, 15\\)"):
        Encoder("fft", 16, 64, 1, FFN, VOCAB)(tokens(15))


def test_shift_adds_a_map_of_the_previous_position_and_learns():
    torch.manual_seed(0)
    encoder = Encoder("fft", 16, 64, 1, FFN, VOCAB, shift=True)
    inputs = tokens(16)
    shifted = encoder.embed(inputs)
    shift, encoder.shift = encoder.shift, None
    plain = encoder.embed(inputs)
    logits_without = encoder(inputs)
    encoder.shift = shift
    torch.testing.assert_close(shifted[:, 0], plain[:, 0])
    torch.testing.assert_close(shifted[:, 1:], plain[:, 1:] + plain[:, :-1] @ shift.weight.T)
    logits = encoder(inputs)
    assert not torch.allclose(logits, logits_without)
    mlm_loss(logits).backward()
    assert shift.weight.grad is not None and shift.weight.grad.abs().sum() > 0


def test_shift_applies_to_vector_inputs_too():
    encoder = Encoder("fft", 16, 64, 1, FFN, 0, head="none", shift=True)
    x = torch.randn(BATCH, 16, 64)
    torch.testing.assert_close(encoder.embed(x)[:, 1:], x[:, 1:] + x[:, :-1] @ encoder.shift.weight.T)


def test_pre_and_peri_norm_encoders_end_with_a_layer_norm():
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB, norm="pre").final_norm is not None
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB, norm="peri").final_norm is not None
    assert Encoder("fft", 16, 64, 1, FFN, VOCAB).final_norm is None


def test_encoder_matmul_flops_match_torch_flop_counter():
    """A linear-mixer encoder with the shift: every matmul the counter sees, FLOP for FLOP."""
    seq_len, dim = 16, 64
    encoder = Encoder("linear", seq_len, dim, LAYERS, FFN, VOCAB, shift=True)
    with FlopCounterMode(display=False) as counter:
        encoder(tokens(seq_len))
    m = mlm_count(seq_len, 0.15)
    layer = mixers.get("linear").flops(seq_len, dim, BATCH) + 4 * BATCH * seq_len * dim * FFN
    expected = (LAYERS * layer + 2 * BATCH * (seq_len - 1) * dim * dim  # shift
                + 2 * BATCH * m * dim * dim + 2 * BATCH * m * dim * VOCAB)  # head transform and decoder
    assert counter.get_total_flops() == expected


def test_a_plugin_mixer_works_in_an_encoder(monkeypatch, step):
    # The planted plugin registers into a copy of the registry, so no other test sees its mixers.
    monkeypatch.setattr(mixers.REGISTRY, "classes", dict(mixers.REGISTRY.classes))
    spec = importlib.util.spec_from_file_location("planted_mixers_for_models", PLANTED)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert "planted-identity" in mixers.available()
    layout = parse_layout("planted-identity+attention:1")
    encoder = Encoder(layout, 16, 64, 2, FFN, VOCAB)
    assert type(encoder.blocks[0].mixer).__name__ == "Identity"
    check_encoder_trains(encoder, tokens(16), step)
    assert param_count("encoder", layout, 16, 64, layers=2, ffn=FFN, vocab=VOCAB) == \
        sum(p.numel() for p in encoder.parameters())
