"""timing's pure answers about a point, without measuring it: the dtype that computes, why it cannot run,
the columns every row has, and the parts it is costed by."""

from dataclasses import replace

import torch

from bench import models
from bench.measuring import timing
from bench.measuring.points import Point, mixer_point


def encoder(mixer, dtype="bfloat16", device="cuda", vocab=100, batch=2, mode="forward"):
    return Point(mixer, "encoder", 256, 128, 2, 512, vocab, "post", batch, f"batch={batch}", dtype, mode, device)


def block(mixer, dtype="bfloat16", device="cuda"):
    return Point(mixer, "block", 256, 128, 1, 512, None, "post", 2, "batch=2", dtype, "forward", device)


def test_the_computing_dtype_of_a_mixer_point_depends_on_its_device_and_sizes():
    assert timing.compute_dtype_name(mixer_point("fft", 256, 128, 1, "float16", "forward", "cuda")) == "float16"
    assert timing.compute_dtype_name(mixer_point("fft", 384, 128, 1, "float16", "forward", "cuda")) == "float32"
    assert timing.compute_dtype_name(mixer_point("fft", 256, 128, 1, "float16", "forward", "cpu")) == "float32"
    assert timing.compute_dtype_name(mixer_point("fft", 256, 128, 1, "bfloat16", "forward", "cuda")) == "float32"
    assert timing.compute_dtype_name(mixer_point("dct", 64, 64, 1, "bfloat16", "forward", "cuda")) == "bfloat16"
    assert timing.compute_dtype_name(mixer_point("dct", 512, 64, 1, "bfloat16", "forward", "cuda")) == "float32"
    assert timing.compute_dtype_name(mixer_point("linear", 64, 64, 1, "float64", "forward", "cpu")) == "float64"


def test_a_model_names_its_dtypes_by_their_share_of_flops():
    # an fft block: the FFT upcasts, the feed-forward's matmuls (most of the FLOPs) stay in bfloat16
    assert timing.compute_dtype_name(block("fft")) == "bfloat16+float32"
    assert timing.compute_dtype_name(block("attention")) == "bfloat16"
    assert timing.compute_dtype_name(block("fft", dtype="float32")) == "float32"
    # a float16 fft at powers of two computes natively on CUDA: one dtype
    assert timing.compute_dtype_name(block("fft", dtype="float16")) == "float16"
    assert timing.compute_dtype_name(encoder("fft+attention:1")) == "bfloat16+float32"
    # a feed-forward one unit wide: now the FFT holds most of the FLOPs, so float32 comes first
    assert timing.compute_dtype_name(replace(block("fft"), ffn=1)) == "float32+bfloat16"
    parts = timing.cost_parts(block("fft"))
    flops = {}
    for part in parts:
        flops[part.compute_dtype] = flops.get(part.compute_dtype, 0) + part.flops
    assert flops[torch.bfloat16] > flops[torch.float32] > 0


def test_a_point_that_cannot_run_says_why():
    ok = mixer_point("fft", 64, 32, 1, "float32", "forward", "cpu")
    assert timing.refusal(ok) is None
    assert timing.refusal(mixer_point("fft", 64, 32, 1, "bfloat16", "forward", "cuda")) is None
    assert timing.refusal(replace(ok, seq_len=4096, batch=0, batching="tokens=2048")) == (
        "tokens=2048 per batch is fewer than one sequence of 4096 tokens; nothing was measured at this length")
    assert "powers of two" in timing.refusal(mixer_point("hadamard", 48, 32, 1, "float32", "forward", "cpu"))
    assert "bfloat16 is not supported on cpu" in timing.refusal(replace(ok, dtype="bfloat16"))
    assert timing.refusal(block("fft+attention:1")) == ("a layout (fft+attention:1) arranges an encoder's layers; at "
                                                         "block scope give a mixer name")
    assert timing.refusal(encoder("fft+attention:1")) is None
    # every mixer of a layout must run the point: hadamard in the top layer refuses 384 tokens
    assert "powers of two" in timing.refusal(replace(encoder("fft+hadamard:1"), seq_len=384))
    assert "powers of two" in timing.refusal(replace(encoder("hadamard+fft:1"), seq_len=384))


def test_every_row_has_the_points_columns_its_computing_dtype_and_its_hash():
    point = mixer_point("fft", 256, 128, 1, "bfloat16", "forward", "cuda")
    row = timing.base_row(point, "Test GPU")
    assert {key: row[key] for key in point.as_dict()} == point.as_dict()
    assert (row["compute_dtype"], row["device_name"], len(row["source_hash"])) == ("float32", "Test GPU", 12)
    refused = timing.base_row(mixer_point("hadamard", 48, 32, 1, "float32", "forward", "cpu"), "cpu")
    assert refused["compute_dtype"] == "" and refused["source_hash"]
    gone = timing.base_row(mixer_point("no-such-mixer", 48, 32, 1, "float32", "forward", "cpu"), "cpu")
    assert gone["compute_dtype"] == "" and gone["source_hash"] == ""


def test_the_parts_of_a_point_are_the_models_with_its_shape():
    point = encoder("fft+attention:1", dtype="float32", device="cpu", vocab=0, mode="train")
    parts = timing.cost_parts(point)
    expected = models.parts("encoder", "fft+attention:1", 256, 128, 2, torch.float32, "train", "cpu", layers=2,
                            ffn=512, vocab=0, norm="post", head="none")
    assert parts == expected and parts[-1].name == "adamw"
    assert [part.name for part in parts if part.name.endswith(("mixer:fft", "mixer:attention"))] == \
        ["layer0.mixer:fft", "layer1.mixer:attention"]
    with_head = timing.cost_parts(encoder("fft", dtype="float32", device="cpu", vocab=100))
    assert any(part.name == "head.decoder" for part in with_head)
    assert timing.cost_parts(Point("fft", "block", 256, 128, 1, 512, None, None, 2, "batch=2", "float32", "forward",
                                   "cpu"))[0].name == "mixer:fft"  # a block without a norm recorded: post-norm


def test_the_parts_know_the_device_and_the_shape_they_run_at():
    half = mixer_point("fft", 256, 128, 1, "float16", "forward", "cuda")
    assert [part.compute_dtype for part in timing.cost_parts(half)] == [torch.float16]  # cuFFT runs fp16 at 2^k
    assert [part.compute_dtype for part in timing.cost_parts(replace(half, device="cpu"))] == [torch.float32]
    narrow, wide = block("attention", dtype="float32"), replace(block("attention", dtype="float32"), ffn=2048)
    ffn = {point.ffn: next(p for p in timing.cost_parts(point) if p.name == "ffn") for point in (narrow, wide)}
    assert ffn[2048].params == 2 * 128 * 2048 + 2048 + 128 and ffn[512].params == 2 * 128 * 512 + 512 + 128
    pre = [part.name for part in timing.cost_parts(replace(narrow, norm="pre"))]
    assert pre[0] == "norm1" and [part.name for part in timing.cost_parts(narrow)][0] == "mixer:attention"
