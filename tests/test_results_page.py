"""docs/results.md, the index of measured results: every row names the command that re-measures it, and
the scripts and subcommands it names exist (a renamed script or command fails here, not in a reader's shell)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ("kirchhoffnet ", "python ", "pytest ", "make ", "PYTHONPATH=")


def _rows() -> list[list[str]]:
    """The results table's body rows, as lists of cells."""
    lines = [line for line in (ROOT / "docs" / "results.md").read_text().splitlines() if line.startswith("|")]
    assert len(lines) > 2, "docs/results.md has no results table"
    _, separator, *body = lines
    assert set(separator) <= set("|- :"), "the second table line is not the header's separator"
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in body]


def _commands(cell: str) -> list[str]:
    return [span for span in re.findall(r"`([^`]+)`", cell) if span.startswith(RUNNERS)]


@pytest.mark.parametrize("row", _rows(), ids=lambda row: row[0][:40])
def test_every_results_row_names_a_command_that_exists(row: list[str]) -> None:
    commands = _commands(row[-1])
    assert commands, f"the row {row[0]!r} names no command (kirchhoffnet …, python …, pytest …, make …)"
    for path in re.findall(r"(?:experiments|benchmarks|tests)/[\w/]*(?:\.py)?", row[-1]):
        assert (ROOT / path).exists(), f"the row {row[0]!r} names {path}, which does not exist"
    runner = CliRunner()
    for command in commands:
        if not command.startswith("kirchhoffnet "):
            continue
        words = []
        for word in command.split()[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"`kirchhoffnet {' '.join(words)}` is not a command: {result.output[-200:]}"


def test_a_row_without_a_command_is_caught() -> None:
    assert not _commands("[Training](training.md), a table of numbers")
    assert _commands("`kirchhoffnet train configs/x.yaml`, `docs/x.md`") == ["kirchhoffnet train configs/x.yaml"]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_config_states_seed_0(path: Path) -> None:
    """The results page says a command without --seed trains with seed 0: each config must say so itself."""
    assert yaml.safe_load(path.read_text()).get("seed") == 0
