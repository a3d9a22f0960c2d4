"""The run folder's files byte by byte: line endings, odd values, empty and torn files, the lock, env.json's form."""

import errno
import os
from pathlib import Path

import pytest

from bench.measuring import store
from bench.measuring.store import COLUMNS, RunFolder, RunFolderError


def test_rows_end_in_newlines_and_carry_line_breaks_and_carriage_returns_inside_a_field(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.append({"mixer": "fft", "status": "error", "error": "first\r\nsecond\rthird\nfourth"})
        assert folder.rows()[0]["error"] == "first\r\nsecond\rthird\nfourth"
    data = (tmp_path / "results.csv").read_bytes()
    assert data.startswith(",".join(COLUMNS).encode() + b"\n") and data.endswith(b"\n")
    assert data.count(b"\r\n") == 1  # the field's own; csv's default line ending would add one per row


def test_an_empty_results_file_gets_its_header_with_the_first_row(tmp_path):
    (tmp_path / "results.csv").write_text("")  # created, but the sweep died before writing anything
    with RunFolder(tmp_path) as folder:
        folder.append({"mixer": "fft", "status": "ok"})
        folder.append({"mixer": "dct", "status": "ok"})
        assert [row["mixer"] for row in folder.rows()] == ["fft", "dct"]
    assert (tmp_path / "results.csv").read_text().count("mixer,") == 1


def test_cells_are_six_significant_digits_and_empty_for_none_and_nan():
    assert [store.cell(v) for v in (None, float("nan"), 1.23456789, 1e-9, 12, "x", True)] == \
        ["", "", "1.23457", "1e-09", "12", "x", "True"]


def test_cut_torn_line_keeps_whole_lines_and_returns_them(tmp_path):
    path = tmp_path / "t.csv"
    assert store._cut_torn_line(path) == b""  # no file: nothing
    path.write_bytes(b"")
    assert store._cut_torn_line(path) == b"" and path.read_bytes() == b""
    path.write_bytes(b"a,b\n1,2\n")
    assert store._cut_torn_line(path) == b"a,b\n1,2\n" and path.read_bytes() == b"a,b\n1,2\n"
    path.write_bytes(b"a,b\n1,2\n3,")
    assert store._cut_torn_line(path) == b"a,b\n1,2\n" and path.read_bytes() == b"a,b\n1,2\n"
    path.write_bytes(b"torn")
    assert store._cut_torn_line(path) == b"" and path.read_bytes() == b""


def test_a_header_that_is_not_utf8_is_refused_not_a_crash(tmp_path):
    (tmp_path / "results.csv").write_bytes(b"\xff\xfe,time\n")
    with pytest.raises(RunFolderError) as error:
        RunFolder(tmp_path).open()
    assert str(error.value) == (f"{tmp_path / 'results.csv'} has columns written by something other than mixbench; "
                                f"it is left untouched: choose another --out")


def test_a_header_of_an_older_mixbench_says_so(tmp_path):
    (tmp_path / "results.csv").write_text("mixer,seq_len\nfft,8\n")
    with pytest.raises(RunFolderError) as error:
        RunFolder(tmp_path).open()
    assert str(error.value) == (f"{tmp_path / 'results.csv'} has columns written by another version of mixbench; "
                                f"it is left untouched: choose another --out")
    (tmp_path / "results.csv").write_text("")
    RunFolder(tmp_path).open().close()  # an empty file has no header to refuse


def test_closing_empties_the_lock_file_and_is_idempotent(tmp_path):
    folder = RunFolder(tmp_path).open()
    assert (tmp_path / ".lock").read_text().startswith("pid ")
    folder.close()
    folder.close()
    assert (tmp_path / ".lock").read_text() == ""
    again = RunFolder(tmp_path).open()  # an empty lock file: nobody died holding it
    assert again.took_over is None
    again.close()


def test_a_lock_left_by_a_dead_process_is_taken_over_and_named(tmp_path):
    (tmp_path / ".lock").write_text("pid 999999\n")
    with RunFolder(tmp_path) as folder:
        assert folder.took_over == "pid 999999"
        assert (tmp_path / ".lock").read_text() == f"pid {os.getpid()}\n"


def test_rounds_skip_a_line_that_does_not_parse_and_keep_the_ones_after_it(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.append_round({"round": 1, "at": Path("/tmp/x")})  # a value json cannot write is written as text
        with open(folder.rounds_path, "a") as handle:
            handle.write("not json\n[1, 2]\n")
        folder.append_round({"round": 2})
        assert folder.rounds() == [{"round": 1, "at": "/tmp/x"}, {"round": 2}]
    assert RunFolder(tmp_path / "none").rounds() == []


def test_a_torn_last_round_is_cut_when_the_folder_is_opened_again(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.append_round({"round": 1})
    with open(tmp_path / "rounds.jsonl", "a") as handle:
        handle.write('{"round": 2, "row"')
    with RunFolder(tmp_path) as folder:
        assert folder.rounds() == [{"round": 1}]
        assert (tmp_path / "rounds.jsonl").read_text() == '{"round": 1}\n'


def test_env_json_is_indented_sorted_and_writes_any_value_as_text(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.write_env({"b": 1, "a": {"d": Path("/x"), "c": None}})
        assert folder.read_env() == {"a": {"c": None, "d": "/x"}, "b": 1}
    text = (tmp_path / "env.json").read_text()
    assert text == '{\n  "a": {\n    "c": null,\n    "d": "/x"\n  },\n  "b": 1\n}\n'
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "env.json"]  # no temporary file left


@pytest.mark.parametrize("content", ["not json", "[1, 2]", "\xff"])
def test_an_env_json_that_is_not_an_object_is_refused_with_the_reason(tmp_path, content):
    (tmp_path / "env.json").write_bytes(content.encode("latin-1"))
    with pytest.raises(RunFolderError, match=r"env.json is not an env.json mixbench wrote \(not a JSON object\); "
                                             r"it is left untouched: choose another --out"):
        RunFolder(tmp_path).read_env()
    assert RunFolder(tmp_path / "none").read_env() == {}


def test_quality_rows_go_to_their_own_table(tmp_path):
    with RunFolder(tmp_path) as folder:
        folder.quality.append({"task": "mqar", "status": "ok", "accuracy": 0.5})
        assert folder.quality.rows()[0]["accuracy"] == "0.5" and folder.rows() == []
    assert (tmp_path / "quality.csv").read_text().splitlines()[0] == ",".join(store.QUALITY_COLUMNS)


def test_a_second_writer_is_told_who_holds_the_folder(tmp_path):
    run_dir = tmp_path / "new" / "run"  # parents created as needed
    first = RunFolder(run_dir).open()
    try:
        with pytest.raises(RunFolderError) as error:
            RunFolder(run_dir).open()
        assert str(error.value) == (f"another sweep (pid {os.getpid()}) is writing to {run_dir}; wait for it to "
                                    f"finish or choose another --out")
        (run_dir / ".lock").write_text("")  # a holder that has not written its pid yet
        with pytest.raises(RunFolderError, match=r"^another sweep \(another process\) is writing"):
            RunFolder(run_dir).open()
    finally:
        first.close()


def test_closing_a_folder_never_opened_does_nothing(tmp_path):
    RunFolder(tmp_path).close()
    assert list(tmp_path.iterdir()) == []


# --- a failed write names the file it could not write -----------------------------------------------------

FULL = (errno.ENOSPC, "No space left on device")


def test_a_failed_fsync_is_raised_with_the_file_it_was_writing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(*FULL)  # as the kernel reports it: no file name

    monkeypatch.setattr(store.os, "fsync", full)
    with pytest.raises(OSError) as raised:
        store._append_line(tmp_path / "results.csv", "a,b\n")
    assert (raised.value.errno, raised.value.strerror, raised.value.filename) == (*FULL, str(tmp_path / "results.csv"))


class _FailingWrites:
    """A file whose writes fail as on a full disk; everything else is the real file's."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, text):
        raise OSError(*FULL)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def test_a_lock_that_cannot_be_written_is_raised_with_the_lock_file(tmp_path, monkeypatch):
    real_open = open
    monkeypatch.setattr(store, "open", lambda path, mode="r", *args, **kwargs: _FailingWrites(
        real_open(path, mode, *args, **kwargs)), raising=False)
    with pytest.raises(OSError) as raised:
        RunFolder(tmp_path / "run").open()
    assert (raised.value.errno, raised.value.strerror, raised.value.filename) == (*FULL,
                                                                               str(tmp_path / "run" / store.LOCK))


@pytest.mark.parametrize("partial", [True, False], ids=["partly-written", "never-created"])
def test_an_env_json_that_cannot_be_written_leaves_the_old_one_whole_and_no_temporary(tmp_path, monkeypatch,
                                                                                       partial):
    folder = RunFolder(tmp_path)
    folder.write_env({"device_name": "old"})
    real_write_text = Path.write_text

    def full(self, text, *args, **kwargs):
        if partial:
            real_write_text(self, text[:5])
        raise OSError(*FULL)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as raised:
        folder.write_env({"device_name": "new"})
    assert (raised.value.errno, raised.value.strerror, raised.value.filename) == (*FULL, str(folder.env_path))
    monkeypatch.undo()
    assert folder.read_env() == {"device_name": "old"} and not folder.env_path.with_suffix(".json.tmp").exists()
