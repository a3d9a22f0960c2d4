"""Causal encoders: logits at position t do not move when later tokens change; a mixer without a causal form
refuses to be built into one, with its reason."""

import pytest
import torch

import mixers
from bench.models import Block, Encoder

CAUSAL = [name for name in mixers.available() if mixers.get(name).causal_form]
SEQ_LEN, VOCAB = 12, 10


def causal_encoder(layout, dim=64, norm="pre", seed=0):
    torch.manual_seed(seed)
    return Encoder(layout, SEQ_LEN, dim, 2, 2 * dim, VOCAB, norm=norm, head="tokens", num_classes=VOCAB,
                   shift=True, mixer_options={"head_dim": 32}, causal=True).double()


def assert_prefix_logits_ignore_later_tokens(model):
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, VOCAB, (3, SEQ_LEN), generator=generator)
    with torch.no_grad():
        logits = model(inputs)
        for step in (0, SEQ_LEN // 2, SEQ_LEN - 2):
            changed = inputs.clone()
            changed[:, step + 1:] = torch.randint(0, VOCAB, (3, SEQ_LEN - step - 1), generator=generator)
            assert not torch.equal(changed, inputs)
            moved = model(changed)
            # float64; the FFT convolution of hyena leaves round-off where its causal filter has zeros
            torch.testing.assert_close(moved[:, :step + 1], logits[:, :step + 1], rtol=1e-10, atol=1e-12)
            assert not torch.allclose(moved[:, step + 1:], logits[:, step + 1:]), "later logits did not move"


@pytest.mark.parametrize("layout", [*CAUSAL, "pool+attention:1", "mamba+linear-attention:1"])
def test_causal_logits_at_t_ignore_tokens_after_t(layout):
    model = causal_encoder(layout)
    assert model.causal and all(block.mixer.causal for block in model.blocks)
    assert_prefix_logits_ignore_later_tokens(model)


@pytest.mark.parametrize("norm", ["post", "peri"])
def test_causal_whatever_the_norm(norm):
    assert_prefix_logits_ignore_later_tokens(causal_encoder("linear", norm=norm))


def test_causal_after_training_steps():
    model = causal_encoder("attention")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    inputs = torch.randint(0, VOCAB, (4, SEQ_LEN), generator=torch.Generator().manual_seed(2))
    for _ in range(3):
        logits = model(inputs)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), inputs.flatten()).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert_prefix_logits_ignore_later_tokens(model)


def test_the_bidirectional_encoder_sees_later_tokens():
    """The check above can fail: without causal=True attention's logits at t move with later tokens."""
    torch.manual_seed(0)
    model = Encoder("attention", SEQ_LEN, 64, 2, 128, VOCAB, norm="pre", head="tokens", num_classes=VOCAB,
                    shift=True).double()
    assert not model.causal
    with pytest.raises(AssertionError):
        assert_prefix_logits_ignore_later_tokens(model)


@pytest.mark.parametrize("layout, refused", [("fft", "fft"), ("fft+attention:1", "fft"), ("attention+dct:1", "dct")])
def test_a_mixer_without_a_causal_form_is_refused_with_its_reason(layout, refused):
    with pytest.raises(mixers.UnsupportedError) as error:
        causal_encoder(layout)
    assert str(error.value) == mixers.get(refused).causal_refusal()


def test_a_causal_option_in_mixer_options_does_not_override_the_block():
    block = Block("attention", 8, 64, 128, mixer_options={"causal": True})
    assert not block.mixer.causal
    with pytest.raises(mixers.UnsupportedError):
        Block("fft", 8, 64, 128, mixer_options={"causal": False}, causal=True)
