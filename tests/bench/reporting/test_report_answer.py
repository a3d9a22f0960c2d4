"""The report's written answer, on hand-made runs whose winners are known: who is fastest, by how much, where it changes."""

import html
import re

import pandas as pd

from bench.reporting import report

ENV = {"device": "cpu", "device_name": "Test CPU"}


def table(times: dict, dtype="float32", failed: dict | None = None) -> pd.DataFrame:
    """Rows from {seq_len: {mixer: time_ms}} in one group, and {seq_len: {mixer: status}} that did not run."""
    rows = []
    common = dict(scope="mixer", dim=64, batch=8, batching="batch=8", dtype=dtype, mode="forward", device="cpu",
                  device_name="Test CPU", rounds=2)
    for seq_len, by_mixer in times.items():
        for mixer, time_ms in by_mixer.items():
            rows.append(dict(common, mixer=mixer, seq_len=seq_len, status="ok", time_ms=time_ms, time_ms_lo=time_ms,
                             time_ms_hi=time_ms, peak_mem_mb=1.0))
    for seq_len, by_mixer in (failed or {}).items():
        for mixer, status in by_mixer.items():
            rows.append(dict(common, mixer=mixer, seq_len=seq_len, status=status, error=f"{status} here"))
    return pd.DataFrame(rows)


def answers(page: str) -> list[str]:
    """The sentences under 'The answer', as text."""
    (summary,) = re.findall(r'<ul class="summary">(.*?)</ul>', page, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in re.findall(r"<li>(.*?)</li>", summary, re.S)]


def test_the_answer_names_the_winner_its_margins_and_where_the_winner_changes():
    runs = table({256: {"attention": 1.0, "linear": 2.0, "fft": 4.0},
                  512: {"linear": 1.0, "fft": 3.0, "attention": 5.0},
                  1024: {"linear": 2.0, "fft": 6.0, "attention": 20.0},
                  2048: {"hadamard": 3.0, "linear": 4.0, "fft": 12.0}},
                 failed={2048: {"attention": "oom"}, 4096: {"attention": "oom"}})
    (sentence,) = answers(report.render(runs, ENV, {}))
    assert sentence == ("At 512 tokens (float32, forward, d=64, batch 8): linear is fastest (1 ms), 3.0× faster than "
                        "fft (runner-up) and 5.0× faster than attention. Fastest by length: attention at 256, linear "
                        "at 512–1k, hadamard at 2k. attention runs out of memory from 2k.")


def test_a_close_win_is_given_in_percent_and_a_baseline_runner_up_is_named_once():
    runs = table({512: {"attention": 1.0, "fft": 1.04, "dct": 2.5}, 1024: {"attention": 3.0, "fft": 3.3}},
                 dtype="float64")
    (sentence,) = answers(report.render(runs, ENV, {}))
    assert sentence == ("At 512 tokens (float64, forward, d=64, batch 8): attention is fastest (1 ms), 4% faster than "
                        "fft (runner-up). It is fastest at every measured length (512–1k).")
    runs = table({512: {"fft": 1.0, "attention": 2.0}})
    (sentence,) = answers(report.render(runs, ENV, {}))
    assert sentence.endswith("fft is fastest (1 ms), 2.0× faster than attention (runner-up). It is fastest at every "
                             "measured length (512).")


def test_each_group_has_its_own_answer_in_bold_lead():
    runs = pd.concat([table({512: {"fft": 1.0, "linear": 2.0}}), table({512: {"linear": 1.0, "fft": 2.0}}, "float64")])
    page = report.render(runs, ENV, {})
    assert answers(page) == [
        "At 512 tokens (float32, forward, d=64, batch 8): fft is fastest (1 ms), 2.0× faster than linear (runner-up). "
        "It is fastest at every measured length (512).",
        "At 512 tokens (float64, forward, d=64, batch 8): linear is fastest (1 ms), 2.0× faster than fft (runner-up). "
        "It is fastest at every measured length (512)."]
    assert "<li><strong>At 512 tokens (float32, forward, d=64, batch 8):</strong> fft is fastest" in page


def test_the_answer_is_at_the_length_nearest_512_on_a_log_scale():
    runs = table({128: {"fft": 1.0, "linear": 2.0}, 1024: {"linear": 1.0, "fft": 2.0}})
    (sentence,) = answers(report.render(runs, ENV, {}))
    assert sentence.startswith("At 1k tokens (") and "linear is fastest" in sentence  # 512 is 1 octave from 1k, 2 from 128
