"""The README and docs/ hold: every relative link resolves, every file, flag and make target they name exists, the
README stays short, its preset tables match the code, and its scale-confound figures are its run folders'.

`python tests/test_docs.py` prints the preset counts the README's tables must show.
"""

import argparse
import csv
import importlib.util
import re
from pathlib import Path

import pytest

from bench import cli
from bench.measuring import plan

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCUMENTS = [README, *sorted((REPO / "docs").glob("*.md")), REPO / "tests" / "mutation" / "README.md",
             *sorted((REPO / "results" / "reference").glob("*/README.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CPU_PRESETS = {"cpu", "encoder", "quick"}  # the presets meant for a CPU; every other one is a GPU's


def sweep_counts() -> dict[str, int]:
    """Points per sweep preset, as `mixbench sweep --preset NAME` plans them."""
    return {name: len(plan.expand(plan.apply_model(axes), "cpu" if name in CPU_PRESETS else "cuda"))
            for name, (_, axes) in plan.PRESETS.items()}


def quality_counts() -> dict[str, int]:
    """Training runs per quality preset, as `mixbench quality --preset NAME` plans them."""
    return {name: len(plan.expand_quality(axes, "cpu" if name in CPU_PRESETS else "cuda"))
            for name, (_, axes) in plan.QUALITY_PRESETS.items()}


def table_counts(text: str, header: str) -> dict[str, int]:
    """{preset: the number in the last column} of the README table whose header row is `header`."""
    lines = text.splitlines()
    assert header in lines, f"no table with the header {header!r} in README.md"
    counts = {}
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        counts[cells[0].strip("`")] = int(cells[-1])
    return counts


def links(path: Path) -> list[str]:
    """The relative link and image targets of a markdown file, outside code blocks, without #fragments."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
    targets = [match.group(1) for match in LINK.finditer(text)]
    return [target.split("#")[0] for target in targets
            if not re.match(r"[a-z]+:", target) and not target.startswith("#")]


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if p.exists()], ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_in_the_repository(path):
    for target in links(path):
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(REPO), f"{path.name} points outside the repository: {target}"
        assert resolved.exists(), f"{path.relative_to(REPO)} links to {target}, which does not exist"


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if p.exists()], ids=lambda p: str(p.relative_to(REPO)))
def test_no_document_points_at_files_users_do_not_have(path):
    text = path.read_text()
    for outside in ("shared/notes", "../shared", "DESIGN.md"):
        assert outside not in text, f"{path.relative_to(REPO)} mentions {outside}"


def test_the_documents_the_readme_promises_exist():
    for name in ("methods", "run-folder", "cluster", "gpu", "mixers", "tasks"):
        assert f"docs/{name}.md" in links(README), name
        assert (REPO / "docs" / f"{name}.md").exists(), name


def test_the_readme_is_short_and_adds_a_mixer_in_its_first_half():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; depth belongs in docs/"
    assert "## Add a mixer" in lines
    assert lines.index("## Add a mixer") < len(lines) / 2


def test_the_readme_shows_both_frontiers_as_images_near_the_top():
    text = README.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert any("/plots/pareto__" in image for image in images), images
    assert any("/plots/quality__" in image for image in images), images
    assert text.index("](results/reference/") < text.index("## Add a mixer")


def without_code(text: str, language: str = "") -> str:
    """`text` without its fenced code blocks (only those in `language` when one is given)."""
    return re.sub(rf"```{language}[^\n]*\n.*?```", "", text, flags=re.DOTALL)


def missing_files(path: Path) -> list[str]:
    """The .py and .sh files a document names (outside its Python examples) that are not in the repository: a
    name is found relative to the document, to the repository, or as the name of a file in it."""
    text = without_code(path.read_text(), "python")
    found = {file.name for pattern in ("*.py", "*.sh") for file in REPO.rglob(pattern) if ".venv" not in file.parts}
    named = set(re.findall(r"[\w./-]*\w\.(?:py|sh)\b", text))
    return sorted(name for name in named if not ((path.parent / name).exists() or (REPO / name).exists()
                                                   or name.rsplit("/", 1)[-1] in found))


def command_line_flags() -> set[str]:
    """Every option of every `mixbench` command, as argparse spells them (--no-X included)."""
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return {flag for command in [parser, *commands.choices.values()] for action in command._actions
            for flag in action.option_strings}


OTHER_TOOLS_FLAGS = {"--nodes", "--gpus-per-node"}  # sbatch's (docs/cluster.md)


@pytest.mark.parametrize("path", [p for p in DOCUMENTS if p.exists()], ids=lambda p: str(p.relative_to(REPO)))
def test_every_file_flag_and_make_target_a_document_names_exists(path):
    assert missing_files(path) == [], f"{path.relative_to(REPO)} names files that do not exist"
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", without_code(path.read_text())))
    unknown = sorted(flags - command_line_flags() - OTHER_TOOLS_FLAGS)
    assert unknown == [], f"{path.relative_to(REPO)} names options mixbench does not have: {unknown}"
    makefile = (REPO / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z-]+)", path.read_text())):
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), f"{path.relative_to(REPO)}: no make target {target}"


def test_a_renamed_module_is_caught(tmp_path):
    document = tmp_path / "old.md"
    document.write_text("`bench/measuring/worker.py` measures; `env.py` fingerprints; `timing.py` is real.\n")
    assert missing_files(document) == ["bench/measuring/worker.py", "env.py"]


def test_the_wheels_to_carry_offline_are_the_extras_make_install_checks():
    spec = importlib.util.spec_from_file_location("setup_check", REPO / "scripts" / "setup_check.py")
    setup_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_check)
    # pytest itself comes with pytest-benchmark, a runtime package
    extras = set(setup_check.EXTRAS.values()) - set(setup_check.RUNTIME.values()) - {"pytest"}
    for path in (README, REPO / "docs" / "gpu.md", REPO / "Makefile"):
        carried = re.findall(r"pip download ([\w\s-]+?) -d \.whl", path.read_text())
        assert carried, f"{path.name} gives no `pip download ... -d .whl` recipe"
        assert all(set(names.split()) == extras for names in carried), (path.name, carried, extras)


SCALE_CONFOUND = REPO / "results" / "reference" / "scale-confound" / "four-layouts"


def test_the_scale_confound_table_shows_its_run_folders_accuracies():
    header = "| layout | MQAR, `pre` (old) | MQAR, `peri` (new) | majority, `pre` (old) | majority, `peri` (new) |"
    columns = [("mqar", "pre"), ("mqar", "peri"), ("majority", "pre"), ("majority", "peri")]
    measured = {}
    for norm in ("pre", "peri"):
        assert f"](results/reference/scale-confound/four-layouts/{norm}/report.html)" in README.read_text()
        with open(SCALE_CONFOUND / norm / "quality.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                assert row["norm"] == norm and row["status"] == "ok"
                measured[row["layout"], row["task"], norm, int(row["seed"])] = float(row["accuracy"])
    lines = README.read_text().splitlines()
    assert header in lines, "no scale-confound table in README.md"
    rows = 0
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        layout, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        for (task, norm), cell in zip(columns, cells, strict=True):
            shown = [float(value) for value in cell.split(" / ")]
            expected = [round(measured[layout.strip("`"), task, norm, seed], 3) for seed in (0, 1)]
            assert shown == expected, f"{layout} {task} {norm}: README shows {cell}, the run folder {expected}"
        rows += 1
    assert rows == 4  # fft, attention, fft+attention:1, dct+attention:1, as issue 25 asks


def test_the_sweep_preset_table_matches_the_code():
    assert table_counts(README.read_text(), "| preset | what it sweeps | points |") == sweep_counts()


def test_the_quality_preset_table_matches_the_code():
    assert table_counts(README.read_text(), "| preset | what it trains | runs |") == quality_counts()


def test_a_table_that_differs_from_the_code_is_caught():
    header = "| preset | what it sweeps | points |"
    wrong = "\n".join([header, "| --- | --- | --- |",
                       *(f"| `{name}` | ... | {count + (name == 'gpu')} |" for name, count in sweep_counts().items())])
    assert table_counts(wrong, header) != sweep_counts()


if __name__ == "__main__":
    for family, counts in (("sweep (points)", sweep_counts()), ("quality (runs)", quality_counts())):
        print(family)
        for name, count in counts.items():
            print(f"  {name:14} {count}")
