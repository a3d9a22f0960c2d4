"""The run folder: rows appended whole, a torn line repaired, one writer at a time."""

import pytest

from bench.measuring.store import COLUMNS, RunFolder, RunFolderError


def test_rows_are_appended_with_one_header(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.append({"mixer": "fft", "seq_len": 512, "status": "ok", "time_ms": 1.23456789})
        folder.append({"mixer": "fft", "seq_len": 1024, "status": "oom", "error": "out, of \"memory\""})
        rows = folder.rows()
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 3
    assert rows[0]["time_ms"] == "1.23457" and rows[1]["error"] == 'out, of "memory"'
    assert rows[1]["time_ms"] == ""


def test_a_torn_last_line_is_cut_when_the_folder_is_opened_again(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.append({"mixer": "fft", "seq_len": 512, "status": "ok"})
    with open(tmp_path / "results.csv", "a") as handle:
        handle.write("fft,1024,12")  # a crash in the middle of a write
    with RunFolder(tmp_path) as folder:
        assert [row["seq_len"] for row in folder.rows()] == ["512"]
        folder.append({"mixer": "fft", "seq_len": 2048, "status": "ok"})
        assert [row["seq_len"] for row in folder.rows()] == ["512", "2048"]


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path):
    first = RunFolder(tmp_path).open()
    try:
        with pytest.raises(RunFolderError, match="another sweep"):
            RunFolder(tmp_path).open()
    finally:
        first.close()
    RunFolder(tmp_path).open().close()  # free again once the first is done


def test_a_folder_written_with_other_columns_is_refused(tmp_path):
    (tmp_path / "results.csv").write_text("mixer,time\nfft,1\n")
    with pytest.raises(RunFolderError, match="has columns written by"):
        RunFolder(tmp_path).open()


def test_env_is_written_atomically_and_read_back(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.write_env({"device": "cpu", "peak_tflops": {"float32": 0.1}})
        assert folder.read_env()["peak_tflops"] == {"float32": 0.1}
    assert not list(tmp_path.glob("*.tmp"))
