"""The version lives in one place and every entry point reports it."""

from __future__ import annotations

import re

from typer.testing import CliRunner

import kirchhoffnet as kn
from kirchhoffnet.cli.main import app
from kirchhoffnet.version import __version__


def test_version_option_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"kirchhoffnet {__version__}"


def test_version_is_pep440_and_exported() -> None:
    assert kn.__version__ == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*(\.dev\d+)?", __version__)
