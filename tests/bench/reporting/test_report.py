"""bench.reporting.report: one self-contained page with every plot embedded, the answer, the tables and the environment."""

import base64
import json
import os
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest

from bench.reporting import plots
from bench.reporting import style
from bench.reporting import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = dict(mixers=("fft", "hadamard", "attention", "linear"), seq_lens=(128, 384, 512, 2048, 16384),
             dtypes=("float32",))


@pytest.fixture(autouse=True)
def low_resolution(monkeypatch):
    monkeypatch.setattr(style, "DPI", 40)


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
    path = report.write(run)  # no plots/ yet: drawn first
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


def test_environment_is_flattened_and_the_command_shown(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    text = Page(report.write(run).read_text(encoding="utf-8")).text
    assert "gpu.clocks.sm_mhz 1980" in text
    assert "peak_tflops.float32 48.0" in text
    assert "mixbench sweep --preset gpu --out results/fake" in text


def test_text_from_the_data_is_escaped(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    html_text = report.write(run).read_text(encoding="utf-8")
    assert "<cublas>" not in html_text
    assert "&lt;cublas&gt; &amp; &quot;bad&quot; state" in html_text
    assert "second line" not in html_text  # a reason is shown by its first line


def test_a_cpu_run_says_so(fake_run):
    run = fake_run(mixers=("fft", "attention"), seq_lens=(64, 128, 256), device="cpu", dtypes=("float32",),
                   modes=("forward",))
    assert "Measured on CPU — not GPU numbers." in Page(report.write(run).read_text(encoding="utf-8")).text


def test_report_works_without_env_and_after_the_folder_moves(fake_run, tmp_path):
    run = fake_run(**SMALL, modes=("forward",))
    (run / "env.json").unlink()
    moved = tmp_path / "elsewhere"
    shutil.copytree(run, moved)
    page = Page(report.write(moved).read_text(encoding="utf-8"))
    assert "No env.json in this run folder." in page.text
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)


def test_stale_plots_are_redrawn_and_fresh_ones_kept(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    plots.draw(run)
    (run / "plots" / "custom.png").write_bytes((run / "plots").glob("time__*.png").__next__().read_bytes())
    page = Page(report.write(run).read_text(encoding="utf-8"))
    assert "plots/custom.png" in page.text  # kept: the plots were newer than the results
    results = run / "results.csv"
    later = results.stat().st_mtime + 60
    os.utime(results, (later, later))  # results newer than the plots now
    report.write(run)
    assert not (run / "plots" / "custom.png").exists()


def test_flatten():
    env = {"a": 1, "b": {"c": None, "d": {"e": [1, 2]}}, "f": {}}
    assert report.flatten(env) == [("a", "1"), ("b.c", "—"), ("b.d.e", "1, 2"), ("f", "—")]


def test_a_run_where_nothing_ran(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    results = pd.read_csv(run / "results.csv").assign(status="timeout", time_ms=None, peak_mem_mb=None,
                                                       error="no result within 120 s")
    results.to_csv(run / "results.csv", index=False)
    text = Page(report.write(run).read_text(encoding="utf-8")).text
    assert "No point ran successfully" in text and "no result within 120 s" in text


def test_env_json_with_odd_values(fake_run):
    run = fake_run(**SMALL, modes=("forward",))
    (run / "env.json").write_text(json.dumps({"device": None, "peak_tflops": "n/a", "gpu": None,
                                              "command": "mixbench <script>"}))
    html_text = report.write(run).read_text(encoding="utf-8")
    assert "mixbench &lt;script&gt;" in html_text and "<script>" not in html_text
