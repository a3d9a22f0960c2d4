"""bench.reporting.plots: every plot kind is drawn from a fake run folder as a real PNG; styles are stable."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from bench.reporting import analysis, plots
from bench.reporting import style
from bench.reporting.render import render_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = dict(mixers=("fft", "hadamard", "attention", "attention-naive", "mlp-mixer"),
             seq_lens=(128, 384, 512, 2048, 16384), dtypes=("float32",))


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    monkeypatch.setattr(style, "DPI", 40)  # the same drawing, fewer pixels: a faster test


def kinds(paths):
    return {path.name.split("__")[0] for path in paths}


def draw(run):
    """The PNGs that `mixbench plot` draws for a run folder."""
    return list(render_run(run, page=False).plots.values())


def test_draw_writes_every_kind_as_a_png_and_the_tables(fake_run):
    run = fake_run(**SMALL)
    paths = draw(run)
    assert kinds(paths) == set(plots.KINDS)
    for path in paths:
        assert path.parent == run / "plots"
        assert path.read_bytes()[:8] == PNG_MAGIC, path.name
    # one file per kind and group: two modes here, and the forward-vs-train plot once for both
    assert len(paths) == 2 * (len(plots.KINDS) - 1) + 1
    assert sorted(p.name for p in (run / "plots").glob("*.png")) == sorted(p.name for p in paths)
    for table in ("pareto.csv", "scaling.csv", "crossovers.csv", "winners.csv"):
        assert (run / table).is_file()


def test_the_manifest_names_each_plot_by_its_kind_and_group(fake_run):
    run = fake_run(**SMALL)
    manifest = render_run(run, page=False).plots
    table = analysis.load_results(run)
    for values, _ in table.groupby(analysis.GROUP_KEYS, dropna=False):
        key = dict(zip(analysis.GROUP_KEYS, values))
        path = manifest[("time", analysis.group_id(key))]
        assert path.name == f"time__{style.group_slug(key)}.png"  # the file names are the same as before
    (modes_group, modes_path), = [(group, path) for (kind, group), path in manifest.items() if kind == "modes"]
    assert dict(modes_group).keys() == set(plots.MODES_GROUP_KEYS)
    assert modes_path.name.startswith("modes__float32_d768")


def test_draw_skips_plots_without_data_and_removes_stale_ones(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    (run / "plots").mkdir()
    (run / "plots" / "time__old_group.png").write_bytes(PNG_MAGIC)
    results = pd.read_csv(run / "results.csv")
    results[["flops", "bytes_min"]] = None  # no analytic cost: no roofline
    results.to_csv(run / "results.csv", index=False)
    (run / "env.json").unlink()  # no environment: still drawn
    paths = draw(run)
    assert kinds(paths) == set(plots.KINDS) - {"roofline", "modes"}
    assert not (run / "plots" / "time__old_group.png").exists()


def test_draw_of_a_run_where_nothing_ran(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    results = pd.read_csv(run / "results.csv").assign(status="oom", time_ms=None, peak_mem_mb=None)
    results.to_csv(run / "results.csv", index=False)
    assert draw(run) == []
    assert (run / "scaling.csv").is_file()


def test_draw_handles_a_cpu_run_a_new_mixer_and_missing_ceilings(fake_run):
    run = fake_run(mixers=("fft", "pool", "attention"), seq_lens=(64, 128, 256, 512), device="cpu",
                   dtypes=("float32",), modes=("train",))
    env = json.loads((run / "env.json").read_text())
    env.update(peak_tflops=None, peak_bandwidth_gbps=None, device_memory_mb=None)
    (run / "env.json").write_text(json.dumps(env))
    paths = draw(run)
    assert {"time", "memory", "roofline", "pareto", "winners"} <= kinds(paths)
    assert all("cpu" in path.name for path in paths)


def test_mixer_styles_are_fixed_for_known_names_and_stable_for_new_ones():
    known = [style.mixer_style(name) for name in style.KNOWN_MIXERS]
    assert len({style["color"] for style in known}) == len(known)
    assert len({(style["color"], style["marker"]) for style in known}) == len(known)
    new = style.mixer_style("my-new-mixer")
    assert new == style.mixer_style("my-new-mixer")
    assert new["color"] not in {style["color"] for style in known}
    assert style.mixer_style("another-one") != new


def test_mixer_order_puts_known_names_first():
    assert style.mixer_order(["zeta", "attention", "fft", "alpha"]) == ["fft", "attention", "alpha", "zeta"]


def test_group_slug_is_a_safe_file_name():
    key = dict(dim=768, batching="tokens=65536", dtype="bfloat16", mode="forward", device="cuda")
    assert style.group_slug(key) == "bfloat16_forward_d768_tokens65536_cuda"
    assert style.group_slug(dict(key, device="cuda:0/../x")) == "bfloat16_forward_d768_tokens65536_cuda0..x"


def test_length_ticks_prefer_powers_of_two():
    assert style.length_ticks([128, 256, 384, 512, 1536, 2048]) == [128, 256, 512, 2048]
    assert style.length_ticks([100, 300, 1000]) == [100, 300, 1000]
    assert len(style.length_ticks([2 ** k for k in range(4, 24)])) <= 10


def test_drawing_does_not_import_torch():
    code = "import sys, bench.reporting.analysis, bench.reporting.plots, bench.reporting.report, bench.reporting.compare, bench.reporting.render; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, "a drawing module imports torch"


def test_the_cost_plots_are_saved_through_style_save(fake_run, monkeypatch):
    saved = []
    save = style.save
    monkeypatch.setattr(style, "save", lambda fig, path: saved.append(path) or save(fig, path) if fig else None)
    run = fake_run(mixers=("fft", "attention"), seq_lens=(128, 256, 512), dtypes=("float32",), modes=("forward",))
    drawn = draw(run)
    assert drawn and sorted(drawn) == sorted(saved)
    assert style.save(None, run / "nothing.png") is None and not (run / "nothing.png").exists()
