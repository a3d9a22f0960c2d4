"""bench.reporting.report: one self-contained page with every plot embedded, the answer, the tables and the environment."""

import base64
import json
import os
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest

from bench import cli
from bench.reporting import analysis, report, style
from bench.reporting.render import render_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = dict(mixers=("fft", "hadamard", "attention", "linear"), seq_lens=(128, 384, 512, 2048, 16384),
             dtypes=("float32",))


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    monkeypatch.setattr(style, "DPI", 40)


def write(run):
    """What `mixbench report` writes for a run folder: its report.html."""
    return render_run(run).page


class Page(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, text):
        super().__init__()
        self.images, self.links, self.tables, self.headings = [], [], 0, []
        self.texts, self._heading = [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for name in ("src", "href"):
            if name in attrs and tag != "img":
                self.links.append(attrs[name])
        if tag == "link" or tag == "script":
            self.links.append(f"<{tag}>")
        if tag == "table":
            self.tables += 1
        if tag in ("h1", "h2", "h3", "summary"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3", "summary") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._heading is not None:
            self._heading.append(data)

    @property
    def text(self):
        return " ".join(" ".join(self.texts).split())


def test_report_is_self_contained_with_every_plot_the_answer_and_the_tables(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    path = write(run)  # no plots/ yet: drawn first
    assert path == run / "report.html"
    pngs = sorted((run / "plots").glob("*.png"))
    assert pngs
    page = Page(path.read_text(encoding="utf-8"))

    assert len(page.images) == len(pngs)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert all(link.startswith("#") for link in page.links), [link for link in page.links if not link.startswith("#")]
    for png in pngs:
        assert f"plots/{png.name}" in page.text

    assert "At 512 tokens (float32, forward, d=768, batch 8):" in page.text
    assert "faster than attention" in page.text
    for heading in ("The answer", "Fastest mixer per length", "Scaling exponents (time ∝ n^k)",
                    "Roofline: measured time vs the hardware floor", "Points that did not run", "Environment",
                    "Command line"):
        assert any(h.startswith(heading) for h in page.headings), heading
    assert page.tables >= 4 + 1  # per group: winners, scaling, roofline, failures; and the environment
    assert "linear fails from 384" in page.text and "hadamard needs seq_len a power of two, got 384" in page.text
    assert "Measured on CPU" not in page.text


def test_the_report_says_what_the_frontier_memory_counts(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    results = pd.read_csv(run / "results.csv")
    results.assign(resident_mem_mb=1.0).to_csv(run / "results.csv", index=False)
    text = Page(write(run).read_text(encoding="utf-8")).text
    assert "Memory on the cost frontier" in text and "plus the call's peak working memory" in text
    assert "recorded no held memory" not in text
    results.drop(columns="resident_mem_mb", errors="ignore").to_csv(run / "results.csv", index=False)  # an old folder
    assert "recorded no held memory" in Page(write(run).read_text(encoding="utf-8")).text


def test_environment_is_flattened_and_the_command_shown(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    text = Page(write(run).read_text(encoding="utf-8")).text
    assert "gpu.clocks.sm_mhz 1980" in text
    assert "peak_tflops.float32 48.0" in text
    assert "mixbench sweep --preset gpu --out results/fake" in text


def test_text_from_the_data_is_escaped(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    html_text = write(run).read_text(encoding="utf-8")
    assert "<cublas>" not in html_text
    assert "&lt;cublas&gt; &amp; &quot;bad&quot; state" in html_text
    assert "second line" not in html_text  # a reason is shown by its first line


def test_a_cpu_run_says_so(fake_run):
    run = fake_run(mixers=("fft", "attention"), seq_lens=(64, 128, 256), device="cpu", dtypes=("float32",),
                   modes=("forward",))
    assert "Measured on CPU — not GPU numbers." in Page(write(run).read_text(encoding="utf-8")).text


def test_report_works_without_env_and_after_the_folder_moves(fake_run, tmp_path):
    run = fake_run(**SMALL, modes=("forward",))
    (run / "env.json").unlink()
    moved = tmp_path / "elsewhere"
    shutil.copytree(run, moved)
    page = Page(write(moved).read_text(encoding="utf-8"))
    assert "No env.json in this run folder." in page.text
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)


def test_a_report_redraws_the_plots_and_embeds_exactly_the_ones_drawn(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    (run / "plots").mkdir()
    (run / "plots" / "time__old_group.png").write_bytes(PNG_MAGIC)
    rendered = render_run(run)
    assert not (run / "plots" / "time__old_group.png").exists()
    assert sorted(rendered.plots.values()) == sorted((run / "plots").glob("*.png"))
    page = Page(rendered.page.read_text(encoding="utf-8"))
    assert len(page.images) == len(rendered.plots)
    assert "plots/time__old_group.png" not in page.text


def test_a_group_shows_the_plots_its_manifest_names_whatever_their_file_names(fake_run, tmp_path):
    run = fake_run(**SMALL, modes=("forward",))
    table = analysis.load_results(run)
    (values, _), = table.groupby(analysis.GROUP_KEYS, dropna=False)
    group = analysis.group_id(dict(zip(analysis.GROUP_KEYS, values)))
    png = tmp_path / "any-name.png"
    png.write_bytes(PNG_MAGIC)
    page = Page(report.render(table, {}, {("pareto", group): png}))
    assert page.text.count("plots/any-name.png") == 1 and len(page.images) == 1


@pytest.mark.parametrize("command", ["report", "plot"])
def test_results_csv_is_read_once_per_command(fake_run, monkeypatch, command):
    run = fake_run(**SMALL, modes=("forward", "train"))
    reads = []
    read_csv = pd.read_csv

    def counting(path, *args, **kwargs):
        reads.append(os.path.basename(path))
        return read_csv(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", counting)
    assert cli.main([command, str(run)]) == 0
    assert reads.count("results.csv") == 1
    assert (run / "report.html").exists() == (command == "report")
    assert (run / "pareto.csv").is_file() and list((run / "plots").glob("pareto__*.png"))


def test_flatten():
    env = {"a": 1, "b": {"c": None, "d": {"e": [1, 2]}}, "f": {}}
    assert report.flatten(env) == [("a", "1"), ("b.c", "—"), ("b.d.e", "1, 2"), ("f", "—")]


def test_a_run_where_nothing_ran(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    results = pd.read_csv(run / "results.csv").assign(status="timeout", time_ms=None, peak_mem_mb=None,
                                                       error="no result within 120 s")
    results.to_csv(run / "results.csv", index=False)
    text = Page(write(run).read_text(encoding="utf-8")).text
    assert "No point ran successfully" in text and "no result within 120 s" in text


def test_env_json_with_odd_values(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    (run / "env.json").write_text(json.dumps({"device": None, "peak_tflops": "n/a", "gpu": None,
                                              "command": "mixbench <script>"}))
    html_text = write(run).read_text(encoding="utf-8")
    assert "mixbench &lt;script&gt;" in html_text and "<script>" not in html_text
