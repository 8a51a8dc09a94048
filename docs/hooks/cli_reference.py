"""MkDocs hook: complete docs/cli.md with the typer app's own ``--help`` of every command (offline).

The page keeps its hand-written conventions (exit codes, output streams) and gets the reference appended at
every build from the installed code, so it cannot drift from the CLI.
"""

from __future__ import annotations

from typing import Any

import typer


def _commands(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """The command and, for a group, every subcommand below it (typer ships its own click: duck-typed)."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, [*path, name])
    return found


def render() -> str:
    from kirchhoffnet.cli.main import app

    root = typer.main.get_command(app)
    parts = ["## Every command's help\n", "Generated from `kirchhoffnet … --help` when the site is built.\n"]
    for path, command in _commands(root, ["kirchhoffnet"]):
        command.rich_markup_mode = None  # type: ignore[attr-defined]  # plain click text, not rich boxes on stdout
        with command.context_class(command, info_name=" ".join(path), terminal_width=100, max_content_width=100) as ctx:
            text = command.get_help(ctx)
        parts.append(f"### `{' '.join(path)}`\n\n```text\n{text}\n```\n")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    return f"{markdown.rstrip()}\n\n{render()}" if page.file.src_uri == "cli.md" else markdown
