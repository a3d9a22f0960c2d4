"""results/README.md is written from the run folders, and says which device each ran on."""

from bench import cli
from bench.reporting.index import write_index


def test_index_lists_every_run_with_its_device_and_findings(fake_run, tmp_path):
    fake_run("gpu-run", device="cuda", seq_lens=(512, 1024, 2048), mixers=("fft", "attention"))
    fake_run("cpu-run", device="cpu", seq_lens=(512, 1024, 2048), mixers=("fft", "attention"),
             dtypes=("float32",))
    (tmp_path / "not-a-run").mkdir()
    text = write_index(tmp_path).read_text()
    assert "[cpu-run](cpu-run/report.html)" in text and "[gpu-run](gpu-run/report.html)" in text
    assert "not-a-run" not in text
    cpu_section = text[text.index("## [cpu-run]"):text.index("## [gpu-run]")]
    assert "**CPU**" in cpu_section and "**GPU**" not in cpu_section
    assert "**GPU**" in text[text.index("## [gpu-run]"):]
    assert "At 512 tokens" in text  # the written answer of each run


def test_index_finds_runs_one_level_deeper_and_links_them_from_where_it_is(fake_run, tmp_path):
    fake_run("reference/gpu-ref", device="cuda", seq_lens=(512, 1024, 2048), mixers=("fft", "attention"))
    fake_run("mine", device="cpu", seq_lens=(512, 1024, 2048), mixers=("fft", "attention"), dtypes=("float32",))
    fake_run("reference/deeper/too-deep", device="cpu", seq_lens=(512, 1024, 2048), mixers=("fft", "attention"),
             dtypes=("float32",))
    path = write_index(tmp_path)
    text = path.read_text()
    assert "## [reference/gpu-ref](reference/gpu-ref/report.html)" in text and "## [mine](mine/report.html)" in text
    assert "too-deep" not in text  # two levels down is not looked at
    for link in ("reference/gpu-ref/report.html", "mine/report.html"):
        assert (path.parent / link).parent.is_dir()  # relative to the README: the run folder is there


def test_index_of_an_empty_folder_says_so(tmp_path):
    assert "No run is committed yet." in write_index(tmp_path).read_text()


def test_index_command_refuses_a_missing_folder(tmp_path, capsys):
    assert cli.main(["index", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
