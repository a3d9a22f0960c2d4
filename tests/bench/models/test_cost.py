"""Analytic cost: parts of a mixer, block and encoder, summed against counts made here independently."""

import pytest
import torch

import mixers
from bench.models import LayoutError, Part, counted_cost, mlm_count, param_count, parts, total

NAMES = mixers.available()
FFN = 128
VOCAB = 50
BATCH = 3


def uses_the_base_rule(cls):
    return cls.cost.__func__ is mixers.TokenMixer.cost.__func__


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("mode", ["forward", "train"])
@pytest.mark.parametrize("name", NAMES)
def test_counted_cost_is_token_mixers_rule(name, mode, dtype, small):
    cls = mixers.get(name)
    if not uses_the_base_rule(cls):
        pytest.skip(f"{name} overrides TokenMixer.cost")
    seq_len, dim = small(name)
    expected = cls.cost(seq_len, dim, BATCH, dtype, mode)
    got = counted_cost(cls.flops(seq_len, dim, BATCH), cls.bytes_min(seq_len, dim, BATCH, dtype),
                       cls.param_count(seq_len, dim), dtype, mode)
    assert got == expected


def test_counted_cost_by_hand():
    assert counted_cost(100, 40, 0, torch.float32, "forward") == (100, 40)
    assert counted_cost(100, 40, 0, torch.float32, "train") == (200, 80)
    assert counted_cost(100, 40, 5, torch.float16, "train") == (300, 80 + 5 * 2)


@pytest.mark.parametrize("mode", ["forward", "train"])
@pytest.mark.parametrize("name", NAMES)
def test_mixer_scope_is_the_mixer_alone(name, mode, small):
    seq_len, dim = small(name)
    cls = mixers.get(name)
    (part,) = parts("mixer", name, seq_len, dim, BATCH, torch.float32, mode)
    assert part == Part(f"mixer:{name}", *cls.cost(seq_len, dim, BATCH, torch.float32, mode),
                        cls.param_count(seq_len, dim), torch.float32)
    assert all(type(value) is int for value in part[1:4])


def test_mixer_part_passes_the_options_and_states_the_upcast():
    (part,) = parts("mixer", "attention", 16, 64, 1, torch.float32, "forward", mixer_options={"head_dim": 32})
    assert part.flops == mixers.get("attention").flops(16, 64, 1, head_dim=32) != mixers.get("attention").flops(16, 64)
    # cuFFT has no bfloat16: the mixer upcasts, the layers around it do not
    block = parts("block", "fft", 16, 64, 1, torch.bfloat16, "forward", "cuda")
    assert {p.name: p.compute_dtype for p in block}["mixer:fft"] == torch.float32
    assert {p.compute_dtype for p in block if p.name != "mixer:fft"} == {torch.bfloat16}


def test_a_mixers_options_reach_its_compute_dtype_and_the_block_scope():
    # the DCT's matrix path computes in the input dtype; its FFT path upcasts half precision
    for method, computes in (("matmul", torch.bfloat16), ("fft", torch.float32)):
        (part,) = parts("mixer", "dct", 16, 64, 1, torch.bfloat16, "forward", mixer_options={"method": method})
        assert part.compute_dtype == computes
    block = {p.name: p for p in parts("block", "attention", 16, 64, 1, torch.float32, "forward",
                                      mixer_options={"head_dim": 32})}
    assert block["mixer:attention"].flops == mixers.get("attention").flops(16, 64, 1, head_dim=32)


@pytest.mark.parametrize("scope", ["mixer", "block"])
def test_one_mixer_scopes_refuse_a_hybrid(scope):
    with pytest.raises(LayoutError) as refused:
        parts(scope, "fft+attention:1", 16, 64, 1, torch.float32, "forward")
    assert str(refused.value) == (f"scope {scope!r} has one mixer; layout fft+attention:1 mixes several "
                                  "(use scope 'encoder')")


@pytest.mark.parametrize("argument, message", [
    (dict(scope="layer"), "unknown scope 'layer' \\(allowed: mixer, block, encoder\\)"),
    (dict(mode="backward"), "unknown mode 'backward' \\(allowed: forward, train\\)"),
    (dict(norm="middle"), "unknown norm"),
    (dict(vocab=0), "head must be 'none'"),
    (dict(head="tokens"), "num_classes"),
])
def test_bad_arguments_are_refused(argument, message):
    call = dict(scope="encoder", layout="fft", seq_len=16, dim=64, batch=1, dtype=torch.float32, mode="forward")
    call.update(argument)
    with pytest.raises(ValueError, match=message):
        parts(**call)
    with pytest.raises(LayoutError, match="last 3 layers"):
        parts("encoder", "fft+attention:3", 16, 64, 1, torch.float32, "forward", layers=2)


# --- independent counts ---------------------------------------------------------------------------

def layer_counts(name, seq_len, dim, ffn, batch, mode):
    """(flops, params) of one block counted here: mixer, feed-forward, two LayerNorms, two residual adds."""
    rows = batch * seq_len
    train = mode == "train"
    mixer = mixers.get(name).cost(seq_len, dim, batch, torch.float32, mode).flops
    ffn_flops = rows * (4 * dim * ffn + 6 * ffn + dim) * (3 if train else 1)
    norms = 2 * 7 * rows * dim * (3 if train else 1)
    residuals = 2 * rows * dim * (2 if train else 1)
    params = mixers.get(name).param_count(seq_len, dim) + 2 * dim * ffn + ffn + dim + 4 * dim
    return mixer + ffn_flops + norms + residuals, params


@pytest.mark.parametrize("mode", ["forward", "train"])
@pytest.mark.parametrize("name", NAMES)
def test_block_flops_by_mode(name, mode, small):
    seq_len, dim = small(name)
    flops, params = layer_counts(name, seq_len, dim, FFN, BATCH, mode)
    if mode == "train":
        flops += 14 * params  # AdamW
    block = parts("block", name, seq_len, dim, BATCH, torch.float32, mode, ffn=FFN)
    assert total(block)[0] == flops
    assert total(block)[2] == params == param_count("block", name, seq_len, dim, ffn=FFN)
    assert [p.name for p in block][-1] == ("adamw" if mode == "train" else "norm2")


@pytest.mark.parametrize("mode", ["forward", "train"])
@pytest.mark.parametrize("layout, names", [("attention", ["attention"] * 3),
                                           ("fft+attention:2", ["fft", "attention", "attention"])])
def test_encoder_flops_are_the_sum_of_the_parts_counted_independently(layout, names, mode):
    seq_len, dim, layers, batch = 16, 64, 3, BATCH
    rows, m = batch * seq_len, mlm_count(seq_len, 0.15)
    train = mode == "train"
    embeddings = rows * dim * (3 if train else 1) + 7 * rows * dim * (3 if train else 1)
    shift = (2 * batch * (seq_len - 1) * dim * dim + rows * dim) * (3 if train else 1)
    body = [layer_counts(name, seq_len, dim, FFN, batch, mode) for name in names]
    head = batch * m * ((2 * dim * dim + 6 * dim) + 7 * dim + (2 * dim * VOCAB + VOCAB)) * (3 if train else 1)
    params = (VOCAB * dim + seq_len * dim + 2 * dim + dim * dim + sum(p for _, p in body)
              + dim * dim + dim + 2 * dim + VOCAB)
    loss_and_optimizer = (2 * 5 * batch * m * VOCAB + 14 * params) if train else 0
    expected = embeddings + shift + sum(f for f, _ in body) + head + loss_and_optimizer
    encoder = parts("encoder", layout, seq_len, dim, batch, torch.float32, mode, layers=layers, ffn=FFN,
                    vocab=VOCAB, shift=True)
    assert total(encoder)[0] == expected
    assert total(encoder)[2] == params
    mixer_parts = [p.name for p in encoder if ".mixer:" in p.name]
    assert mixer_parts == [f"layer{i}.mixer:{name}" for i, name in enumerate(names)]


def test_encoder_parts_run_in_order_and_each_head_has_its_parts():
    def names(**options):
        return [p.name for p in parts("encoder", "fft", 16, 64, 1, torch.float32, "train", layers=1, ffn=FFN,
                                      **options)]

    layer = ["layer0.mixer:fft", "layer0.residual1", "layer0.norm1", "layer0.ffn", "layer0.residual2",
             "layer0.norm2"]
    assert names(vocab=VOCAB) == ["embeddings", "embeddings.norm", *layer, "head.transform", "head.norm",
                                  "head.decoder", "loss", "adamw"]
    pre = ["layer0.norm1", "layer0.mixer:fft", "layer0.residual1", "layer0.norm2", "layer0.ffn", "layer0.residual2"]
    assert names(vocab=VOCAB, norm="pre", head="tokens", num_classes=4) == [
        "embeddings", "embeddings.norm", *pre, "final_norm", "head.classifier", "loss", "adamw"]
    peri = ["layer0.norm1", "layer0.mixer:fft", "layer0.out_norm1", "layer0.residual1", "layer0.norm2",
            "layer0.ffn", "layer0.out_norm2", "layer0.residual2"]
    assert names(vocab=VOCAB, norm="peri", head="tokens", num_classes=4) == [
        "embeddings", "embeddings.norm", *peri, "final_norm", "head.classifier", "loss", "adamw"]
    assert names(vocab=VOCAB, head="sequence", num_classes=4)[-4:] == ["head.pool", "head.classifier", "loss",
                                                                        "adamw"]
    assert names(vocab=0, head="none", shift=True) == ["shift", *layer, "adamw"]


def test_part_bytes_read_inputs_and_parameters_and_write_outputs():
    seq_len, dim, batch, item = 16, 64, 2, 2
    rows, m = batch * seq_len, mlm_count(seq_len, 0.15)
    got = {p.name: p for p in parts("encoder", "fft", seq_len, dim, batch, torch.float16, "forward", layers=1,
                                     ffn=FFN, vocab=VOCAB)}
    assert got["embeddings"].bytes_min == rows * 8 + (rows * dim + seq_len * dim + rows * dim) * item
    assert got["layer0.norm1"].bytes_min == (2 * rows * dim + 2 * dim) * item
    assert got["layer0.residual1"].bytes_min == 3 * rows * dim * item
    assert got["layer0.ffn"].bytes_min == (2 * rows * dim + 2 * dim * FFN + FFN + dim) * item
    assert got["layer0.mixer:fft"].bytes_min == mixers.get("fft").bytes_min(seq_len, dim, batch, torch.float16)
    assert got["head.decoder"].bytes_min == (m * batch * dim + VOCAB * dim + VOCAB + batch * m * VOCAB) * item
    assert got["head.decoder"].params == VOCAB  # the tied weight is the embedding's
    # a dense layer reads its rows and parameters and writes its rows; the MLM transform adds GELU's 5 FLOPs each
    assert got["head.transform"].bytes_min == (m * batch * (dim + dim) + dim * dim + dim) * item
    assert got["head.transform"].flops == m * batch * (2 * dim * dim + dim + 5 * dim)
    classes = 3
    for head, rows_in in (("tokens", rows), ("sequence", batch)):
        classifier = {p.name: p for p in parts("encoder", "fft", seq_len, dim, batch, torch.float16, "forward",
                                               layers=1, ffn=FFN, vocab=VOCAB, head=head, num_classes=classes)}
        assert classifier["head.classifier"].bytes_min == (rows_in * (dim + classes) + dim * classes + classes) * item
        assert classifier["head.classifier"].flops == rows_in * (2 * dim * classes + classes)  # no GELU
        assert classifier["head.classifier"].params == dim * classes + classes
    train = {p.name: p for p in parts("encoder", "fft", seq_len, dim, batch, torch.float16, "train", layers=1,
                                       ffn=FFN, vocab=VOCAB)}
    # train: twice the forward traffic, plus the gradient of the tied weight and the bias
    assert train["head.decoder"].bytes_min == 2 * got["head.decoder"].bytes_min + (VOCAB * dim + VOCAB) * item
    params = total(got.values())[2]
    assert train["adamw"] == Part("adamw", 14 * params, 7 * params * item, 0, torch.float16)


def test_the_shift_the_pooled_head_and_the_loss_by_hand():
    seq_len, dim, batch, item, classes, dtype = 16, 64, 2, 2, 3, torch.float16
    rows = batch * seq_len
    sizes = dict(layers=1, ffn=FFN, vocab=VOCAB, num_classes=classes, shift=True)
    got = {p.name: p for p in parts("encoder", "fft", seq_len, dim, batch, dtype, "forward", head="sequence",
                                     **sizes)}
    # the token shift: a causal (seq_len - 1)-tap mix of dim x dim weights and its sum; reads x and W, writes y
    assert got["shift"] == Part("shift", 2 * batch * (seq_len - 1) * dim * dim + rows * dim,
                                (2 * rows * dim + dim * dim) * item, dim * dim, dtype)
    assert got["head.pool"] == Part("head.pool", rows * dim, (rows * dim + batch * dim) * item, 0, dtype)
    # the loss reads the logits and writes one value, and reads one int64 target per scored position
    for head, targets in (("tokens", rows), ("sequence", batch)):
        train = {p.name: p for p in parts("encoder", "fft", seq_len, dim, batch, dtype, "train", head=head, **sizes)}
        logits = targets * classes
        cost = counted_cost(5 * logits, (logits + 1) * item + 8 * targets, 0, dtype, "train")
        assert train["loss"] == Part("loss", cost.flops, cost.bytes_min, 0, dtype)


def test_bert_base_and_fnet_base_differ_by_their_mixers():
    """At 512 tokens the only difference between the layouts is 12 mixers' FLOPs."""
    base = dict(layers=12, ffn=3072, vocab=30522)
    bert = total(parts("encoder", "attention", 512, 768, 1, torch.float32, "forward", **base))[0]
    fnet = total(parts("encoder", "fft", 512, 768, 1, torch.float32, "forward", **base))[0]
    assert bert - fnet == 12 * (mixers.get("attention").flops(512, 768) - mixers.get("fft").flops(512, 768))


def test_total_sums_each_column():
    assert total([Part("a", 1, 2, 3, torch.float32), Part("b", 10, 20, 30, torch.float32)]) == (11, 22, 33)
    assert total([]) == (0, 0, 0)


def test_defaults_are_bert_like():
    explicit = parts("encoder", "fft", 16, 64, 1, torch.float32, "forward", layers=12, ffn=256, vocab=32000)
    assert parts("encoder", "fft", 16, 64, 1, torch.float32, "forward") == explicit
