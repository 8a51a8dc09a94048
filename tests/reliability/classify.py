"""How the sweep judges a finished child: its exit status, its output, and the files it touched.

Outcomes: ``ok`` (exit 0), ``clean-error`` (exit 1 or 2 and exactly one non-progress stderr line,
starting ``error:``), ``long-work`` (killed at the wall-clock bound while its progress lines kept
coming: work the case asked for, visibly alive, e.g. ``epochs: 1e9``), and the failures:
``traceback``, ``internal-error``, ``multi-line`` (several lines, or one that is not an ``error:``
line), ``no-line`` (failed silently), ``bad-exit`` (another exit code), ``hang`` (killed at the
wall-clock bound with no recent progress line, or SIGXCPU at the CPU bound), ``native-crash`` (killed
by a signal), ``nan-pass`` (exit 0 while its stdout or a JSON file it wrote holds NaN or infinity) and
``touched-outside`` (a file outside the sandbox, or a protected user file, changed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import stat
from pathlib import Path
from typing import Any

FAILURES = {
    "traceback",
    "internal-error",
    "multi-line",
    "no-line",
    "bad-exit",
    "hang",
    "native-crash",
    "nan-pass",
    "touched-outside",
}
THIRD_PARTY_CACHES = ("torchinductor_", "matplotlib-")  # torch's and matplotlib's own caches in TMPDIR
PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[|it/s\]|s/it\]")
NON_FINITE = re.compile(r"(?<![\w.])-?(NaN|nan|Infinity|inf)(?![\w])")
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning)\b|[A-Za-z_][\w.]*Error:)")
FRAME = re.compile(r'File "([^"]+)", line \d+, in (\S+)')


def normalise(line: str, limit: int = 110) -> str:
    """A message with its variable parts (paths, quoted text, numbers) blanked, to group failures."""
    line = re.sub(r"'[^']{0,400}'|\"[^\"]{0,400}\"", "'…'", line)
    line = re.sub(r"(?:\.{0,2}/)?(?:[\w.+-]+/)+[\w.+-]*", "PATH", line)
    line = re.sub(r"0x[0-9a-fA-F]+", "H", line)
    line = re.sub(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", "N", line)
    return line[:limit]


def error_lines(stderr: str) -> list[str]:
    """Stderr's non-empty lines, progress bars (tqdm, with carriage returns) left out."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.rsplit("\r", 1)[-1].strip()
        if line and not PROGRESS.search(line):
            lines.append(line)
    return lines


def _traceback_signature(stderr: str) -> str:
    """The exception line and the innermost kirchhoffnet frame of the last traceback."""
    last = stderr[stderr.rfind("Traceback (most recent call last)") :]
    frames = [(Path(f).name, fn) for f, fn in FRAME.findall(last) if "kirchhoffnet" in f and "/tests/" not in f]
    lines = [line.strip() for line in last.splitlines() if line.strip()]
    exception = next((line for line in reversed(lines) if EXCEPTION_LINE.match(line)), lines[-1] if lines else "")
    where = f" at {frames[-1][0]}:{frames[-1][1]}" if frames else ""
    return normalise(exception, 90) + where


def json_files(sandbox: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every JSON file in the sandbox: taken before a run, to tell what it wrote."""
    found = {}
    for path in sandbox.rglob("*.json"):
        with contextlib.suppress(OSError):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found[str(path)] = (info.st_mtime_ns, info.st_size)
    return found


def _written_non_finite(sandbox: Path, before: dict[str, tuple[int, int]]) -> str | None:
    """A JSON file the run wrote (new or changed) that holds NaN or infinity (the first one found)."""
    for name, state in json_files(sandbox).items():
        if before.get(name) == state:
            continue  # a planted input, not a result
        try:
            text = Path(name).read_text(errors="replace")[:2_000_000]
        except OSError:
            continue
        if NON_FINITE.search(text):
            return Path(name).name
    return None


def classify(
    status: int, stop: str, stdout: str, stderr: str, sandbox: Path, before: dict[str, tuple[int, int]]
) -> tuple[str, str]:
    """(outcome, signature) of a finished child; the signature groups failures of one cause. ``stop``
    says how it ended: "" by itself, "progressing" or "silent" when killed at the wall-clock bound."""
    if stop == "progressing":
        lines = [line for line in stderr.replace("\r", "\n").splitlines() if PROGRESS.search(line)]
        return "long-work", normalise(lines[-1].split(":")[0] if lines else "", 40)
    if stop:
        return "hang", "killed at the wall-clock bound"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals.__members__.values() else str(number)
        if number == signal.SIGXCPU:
            return "hang", "SIGXCPU at the CPU-time bound"
        tail = error_lines(stderr)[-1:] or [""]
        return "native-crash", f"{name} {normalise(tail[0], 80)}".strip()
    code = os.WEXITSTATUS(status)
    lines = error_lines(stderr)
    if "Traceback (most recent call last)" in stderr:
        return "traceback", _traceback_signature(stderr)
    if code == 0:
        if NON_FINITE.search(stdout):
            return "nan-pass", "stdout: " + normalise(next(x for x in stdout.splitlines() if NON_FINITE.search(x)), 80)
        written = _written_non_finite(sandbox, before)
        if written:
            return "nan-pass", f"wrote non-finite numbers to {written}"
        return "ok", ""
    if code not in (1, 2):
        return "bad-exit", f"exit {code}: " + normalise(lines[-1] if lines else "", 80)
    if any("internal error" in line for line in lines):
        return "internal-error", normalise(next(x for x in lines if "internal error" in x))
    if not lines:
        return "no-line", f"exit {code} with nothing on stderr"
    if len(lines) == 1 and lines[0].startswith("error: "):
        return "clean-error", normalise(lines[0])
    words = [line.strip("│╭╮╰╯─ ") for line in lines]  # typer's boxed panels: the text inside the box
    telling = [w for w in words if re.search(r"[A-Za-z]{3}", w) and not w.startswith(("Usage:", "Try "))]
    return "multi-line", f"{len(lines)} lines: " + normalise((telling or words)[-1], 80)


def _fingerprint(path: Path) -> Any:
    try:
        info = path.lstat()
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return ("link", os.readlink(path))
    if stat.S_ISDIR(info.st_mode):
        return ("dir", info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        return ("other", info.st_mode)
    return ("file", info.st_mode, info.st_size, hashlib.sha1(path.read_bytes()).hexdigest())


def snapshot(root: Path, protected: list[str] | None = None) -> dict[str, Any]:
    """Fingerprints of everything under ``root`` except the sandbox and the temporary folder (plus the
    protected files inside the sandbox): what no command may change."""
    found: dict[str, Any] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == root:
            dirs[:] = [d for d in dirs if d not in ("sandbox", "tmp")]
        for name in [*dirs, *files]:
            found[str((here / name).relative_to(root))] = _fingerprint(here / name)
    for name in protected or []:
        found[name] = _fingerprint(root / name)
    return found


def touched(root: Path, protected: list[str], before: dict[str, Any], check_tmp: bool = True) -> str:
    """What changed outside the sandbox (or in a protected file) since ``before``; "" if nothing."""
    after = snapshot(root, protected)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    if changed:
        kinds = {"gone" if name not in after else "new" if name not in before else "changed" for name in changed}
        where = "protected user file" if all(n.startswith("sandbox/") for n in changed) else "outside the run"
        return f"{'/'.join(sorted(kinds))} {where}: {Path(changed[0]).name[:60]}"
    leftovers = sorted(os.listdir(root / "tmp")) if check_tmp and (root / "tmp").is_dir() else []
    leftovers = [name for name in leftovers if not name.startswith(THIRD_PARTY_CACHES)]
    if leftovers:
        return f"left files in TMPDIR: {normalise(leftovers[0], 60)}"
    return ""
