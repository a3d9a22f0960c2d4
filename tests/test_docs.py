"""The README and docs/ hold: every relative link resolves, the README stays short, its preset tables match the code.

`python tests/test_docs.py` prints the preset counts the README's tables must show.
"""

import re
from pathlib import Path

import pytest

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
    for name in ("methods", "run-folder", "cluster", "mixers", "tasks"):
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
