"""bench.reporting.compare: two runs matched point by point, ratios B / A, points in only one run listed."""

import numpy as np
import pandas as pd
import pytest

from bench.reporting import compare
from bench.reporting import plots
from bench.reporting import style

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    monkeypatch.setattr(style, "DPI", 40)


def write_run(folder, rows, device_name="GPU"):
    """A run folder from (mixer, seq_len, time_ms, peak_mem_mb, status) tuples, batch 8, float32 forward."""
    folder.mkdir(parents=True)
    pd.DataFrame([dict(mixer=mixer, seq_len=seq_len, dim=64, batch=8, batching="batch=8", dtype="float32",
                       mode="forward", device="cuda", device_name=device_name, status=status, time_ms=time_ms,
                       peak_mem_mb=peak_mem_mb, error="" if status == "ok" else status)
                  for mixer, seq_len, time_ms, peak_mem_mb, status in rows]).to_csv(folder / "results.csv", index=False)
    return folder


def test_ratios_are_b_over_a_and_unmatched_points_are_listed(tmp_path):
    run_a = write_run(tmp_path / "a100", [("fft", 512, 2.0, 10.0, "ok"), ("fft", 1024, 4.0, 20.0, "ok"),
                                          ("attention", 1024, None, None, "oom"), ("dct", 512, 1.0, 1.0, "ok")],
                      device_name="A100")
    run_b = write_run(tmp_path / "h100", [("fft", 512, 1.0, 10.0, "ok"), ("fft", 1024, 1.0, 40.0, "ok"),
                                          ("attention", 1024, 3.0, 5.0, "ok"), ("hadamard", 512, 1.0, 1.0, "ok")],
                      device_name="H100")
    table = compare.compare(run_a, run_b)
    fft = table[table["mixer"] == "fft"].set_index("seq_len")
    assert fft.loc[512, "time_ratio"] == pytest.approx(0.5)
    assert fft.loc[1024, "time_ratio"] == pytest.approx(0.25)
    assert fft.loc[1024, "mem_ratio"] == pytest.approx(2.0)
    attention = table[table["mixer"] == "attention"].iloc[0]
    assert np.isnan(attention["time_ratio"]) and attention["only_in"] == ""  # in both, but it failed in A
    only = dict(zip(table["mixer"], table["only_in"]))
    assert only["dct"] == "a" and only["hadamard"] == "b"

    out = run_b / "compare-a100"  # the default: next to run B, named after run A
    assert (out / "compare.csv").is_file()
    assert (out / "compare.png").read_bytes()[:8] == PNG_MAGIC
    written = pd.read_csv(out / "compare.csv")
    assert len(written) == len(table) and "only_in" in written.columns

    text = compare.format_table(table)
    assert "A: " in text and "(A100)" in text and "(H100)" in text
    assert "0.35×" in text  # fft's geometric mean of 0.5 and 0.25
    assert "only in A" in text and "only in B" in text and "A oom, B ok" in text


def test_out_dir_and_no_overlap(tmp_path):
    run_a = write_run(tmp_path / "a", [("fft", 512, 2.0, 1.0, "ok")])
    run_b = write_run(tmp_path / "b", [("dct", 512, 1.0, 1.0, "ok")])
    table = compare.compare(run_a, run_b, tmp_path / "out")
    assert (tmp_path / "out" / "compare.csv").is_file()
    assert not (tmp_path / "out" / "compare.png").exists()  # nothing to plot
    assert sorted(table["only_in"]) == ["a", "b"]
    assert "No point ran in both runs." in compare.format_table(table)


def test_a_point_two_series_share_is_matched_once_with_its_own_label():
    keys = dict(mixer="fft", seq_len=8192, dim=64, batch=8, dtype="float32", mode="forward", device_name="",
                status="ok", peak_mem_mb=1.0, tokens_per_s=1.0, error="")
    run_a = pd.DataFrame([dict(keys, batching="batch=8", time_ms=2.0),
                          dict(keys, batching="tokens=65536", time_ms=2.2)])
    run_b = pd.DataFrame([dict(keys, batching="batch=8", time_ms=1.0)])
    table = compare.match(run_a, run_b)
    assert len(table) == 1
    assert table.iloc[0]["batching"] == "batch=8" and table.iloc[0]["time_ratio"] == pytest.approx(0.5)


def test_format_table_limits_rows(fake_run):
    run_a = fake_run("a", mixers=("fft", "attention"), seq_lens=(128, 256, 512), dtypes=("float32",))
    run_b = fake_run("b", mixers=("fft", "attention"), seq_lens=(128, 256, 512), dtypes=("float32",), seed=1)
    table = compare.compare(run_a, run_b)
    assert len(table) == 12 and table["time_ratio"].notna().all()
    text = compare.format_table(table, max_rows=5)
    assert "… 7 more rows in compare.csv" in text
