"""bench.reporting.scopes on hand-made tables whose answers are known: share, speed-ups, the paper's claims."""

import pandas as pd
import pytest

from bench.reporting import scopes

SHAPE = {"mixer": dict(layers="", ffn="", vocab="", norm=""), "block": dict(layers=1, ffn=512, vocab="", norm="post"),
         "encoder": dict(layers=4, ffn=512, vocab=1000, norm="post")}


def row(mixer, scope, seq_len, time_ms, mode="train", dtype="float32", batch=2, peak=1.0, resident=0.0, flops=0):
    return dict(mixer=mixer, scope=scope, seq_len=seq_len, dim=128, batch=batch, batching=f"batch={batch}",
                dtype=dtype, mode=mode, device="cpu", device_name="test cpu", status="ok", time_ms=time_ms,
                peak_mem_mb=peak, resident_mem_mb=resident, flops=flops, **SHAPE[scope])


def test_share_counts_each_layer_with_its_own_mixer():
    table = pd.DataFrame([
        row("fft", "mixer", 512, 1.0), row("attention", "mixer", 512, 5.0),
        row("fft", "block", 512, 4.0), row("attention", "block", 512, 10.0),
        row("fft", "encoder", 512, 40.0), row("fft+attention:1", "encoder", 512, 50.0),
    ])
    share = scopes.mixer_share(table).set_index(["mixer", "scope"])["share"]
    assert share[("fft", "block")] == pytest.approx(1.0 / 4.0)
    assert share[("attention", "block")] == pytest.approx(5.0 / 10.0)
    assert share[("fft", "encoder")] == pytest.approx(4 * 1.0 / 40.0)
    assert share[("fft+attention:1", "encoder")] == pytest.approx((3 * 1.0 + 1 * 5.0) / 50.0)


def test_share_needs_the_mixer_alone_at_the_same_point():
    table = pd.DataFrame([row("fft", "mixer", 256, 1.0), row("fft", "block", 512, 4.0),
                          row("fft", "mixer", 512, 1.0, mode="forward")])
    assert scopes.mixer_share(table).empty


def test_speedups_are_attentions_time_over_the_layouts_at_the_same_scope():
    table = pd.DataFrame([row("attention", "mixer", 512, 8.0), row("fft", "mixer", 512, 1.0),
                          row("attention", "encoder", 512, 30.0), row("fft", "encoder", 512, 20.0)])
    speed = scopes.speedups(table).set_index("scope")["speedup"]
    assert speed["mixer"] == pytest.approx(8.0) and speed["encoder"] == pytest.approx(1.5)


def encoder_run(fft_ms, attention_ms, naive_ms=None, mode="train"):
    rows = [row("attention", "encoder", 512, attention_ms, mode=mode), row("fft", "encoder", 512, fft_ms, mode=mode)]
    if naive_ms:
        rows.append(row("attention-naive", "encoder", 512, naive_ms, mode=mode))
    return pd.DataFrame(rows)


def claim(table, text, env=None):
    found = scopes.claims(table, env or {"device": "cuda"})
    return found[found["claim"].str.contains(text, regex=False)].iloc[0]


def test_a_speed_claim_holds_when_we_reach_the_papers_ratio_within_the_tolerance():
    held = claim(encoder_run(fft_ms=100, attention_ms=175, naive_ms=300), "pre-trains faster than BERT-Base at 512 "
                 "tokens (GPU)")
    assert held["ours_vs_attention"] == pytest.approx(1.75) and held["verdict_vs_attention"] == "holds"
    assert held["ours_vs_attention_naive"] == pytest.approx(3.0) and held["verdict_vs_attention_naive"] == "holds"
    failed = claim(encoder_run(fft_ms=100, attention_ms=120), "pre-trains faster than BERT-Base at 512 tokens (GPU)")
    assert failed["verdict_vs_attention"] == "does not hold"
    assert failed["verdict_vs_attention_naive"] == "not measured in this run"


def test_a_tpu_claim_is_never_judged_and_a_cpu_run_says_it_is_one():
    tpu = claim(encoder_run(100, 300), "(TPU)")
    assert tpu["verdict_vs_attention"] == "not measured on this device" and "TPU claim" in tpu["note"]
    cpu = claim(encoder_run(100, 300), "(GPU)", env={"device": "cpu"})
    assert cpu["verdict_vs_attention"] == "holds" and "CPU run" in cpu["note"] and cpu["device"] == "CPU"


def test_the_fastest_claim_names_who_beat_fft():
    table = pd.concat([encoder_run(100, 300), pd.DataFrame([row("linear", "encoder", 512, 90.0)])])
    fastest = claim(table, "fastest at every Long Range Arena length")
    assert fastest["verdict_vs_attention"] == "does not hold" and "linear at 512" in fastest["note"]


def test_the_memory_claim_compares_total_training_memory_at_every_length():
    table = pd.DataFrame([row("attention", "encoder", 512, 1, peak=30, resident=10),
                          row("fft", "encoder", 512, 1, peak=10, resident=10),
                          row("attention", "encoder", 1024, 1, peak=60, resident=10),
                          row("fft", "encoder", 1024, 1, peak=15, resident=10)])
    memory = claim(table, "light memory footprint")
    assert memory["ours_vs_attention"] == pytest.approx(2.0)  # the lowest ratio: 40/20 at 512
    assert memory["verdict_vs_attention"] == "holds" and "512, 1k" in memory["note"]
