"""Every command's help: ``-h`` as well as ``--help``, and click's plain names rather than typer's
``<bool>`` and ``{name}`` tags. The commands come from the command tree, so a new one is covered too."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from .test_usage_errors import GROUPS, LEAVES

runner = CliRunner()
PATHS = sorted({*GROUPS, *(path for path, _ in LEAVES)})


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "kirchhoffnet")
def test_dash_h_is_help_and_help_has_no_type_tags(path):
    from kirchhoffnet.cli.main import app

    short, long = runner.invoke(app, [*path, "-h"]), runner.invoke(app, [*path, "--help"])
    assert short.exit_code == long.exit_code == 0, short.output
    assert short.stdout == long.stdout and "Usage:" in short.stdout
    assert not re.search(r"<(bool|str|int|float|path|list)[^>]*>|\{[a-z_]+\}", short.stdout), short.stdout
