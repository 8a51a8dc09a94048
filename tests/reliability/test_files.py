"""File-system hazards: planted links, foreign temporary files, hostile run names and output paths, read-only
directories and full disks. Each ends in one ``error:`` line (exit 2) that names the path, and leaves every
file kirchhoffnet did not create — and the previous good result — exactly as it was.

Read-only directories are real (``chattr +i``, which binds root too) where the kernel allows it; failures
inside a write are injected at the OS call (``OSError(EROFS)``, ``OSError(ENOSPC)`` mid-write) or provoked
for real with ``RLIMIT_FSIZE`` in a child process.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.config import write_config
from kirchhoffnet.errors import ConfigError, KirchhoffError, StorageError, TrainingError
from kirchhoffnet.io._atomic import TMP_SUFFIX, _tmp_prefix, atomic_write, remove_orphans, write_text_atomic
from kirchhoffnet.io.paths import check_run_name, prepare_out_dir
from kirchhoffnet.training import CHECKPOINT, train
from kirchhoffnet.training import _state as training_state
from kirchhoffnet.training._state import load_checkpoint
from kirchhoffnet.training.rundir import LOCK, RUN_OUTPUTS, RunLock

from ..training.helpers import tiny_flow
from .crash import environment

TINY_RING = (
    "task: diffusion\ndata: ring\nseed: 3\nthreads: 1\nmodel: {kind: crossbar, width: 8}\n"
    "train: {epochs: 1, steps_per_epoch: 150, batch_size: 128, lr: 0.003, grad_clip: 1.0}\n"
    "score_matching: {val_size: 128}\nsample: {steps: 20}\nanalog: {steps: 5}\nevaluate: {num_samples: 200}\n"
)
"""A diffusion config of the shared family: trained, resumed and guarded by `kirchhoffnet train` like every task."""
HOSTILE_NAMES = ["../x", "/abs", "a\0b", "..", ".", "x" * 300, "a/b", "-rf", ".hidden", "tab\tname", " pad", ""]


def one_error_line(result, *fragments: str) -> str:
    """The command failed (exit 1 or 2 by the error's class, docs/cli.md) and printed exactly one ``error:``
    line holding ``fragments``."""
    lines = result.output.strip().splitlines()
    assert result.exit_code in (1, 2), result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def snapshot(root: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``root`` (links not followed): its kind and content."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                entries[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                entries[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                entries[str(path)] = ("dir", "")
    return entries


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train(tiny_flow("train.epochs=1"), tmp_path_factory.mktemp("flow") / "run", progress=False).run_dir


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ring")
    (root / "ring.yaml").write_text(TINY_RING)
    result = CliRunner().invoke(app, ["train", str(root / "ring.yaml"), "--out", str(root / "run"), "--no-progress"])
    assert result.exit_code == 0, result.output
    return root / "run"


# --- the run lock ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plant", ["symlink", "hardlink", "directory", "fifo"])
def test_a_planted_lock_is_refused_and_the_file_it_points_at_is_untouched(plant, tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("the user's thesis\n")
    run = tmp_path / "run"
    run.mkdir()
    lock = run / LOCK
    if plant == "symlink":
        lock.symlink_to(precious)
    elif plant == "hardlink":
        os.link(precious, lock)
    elif plant == "directory":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    before = snapshot(tmp_path)
    with pytest.raises(StorageError, match=rf"{LOCK}"):
        RunLock(run)
    assert snapshot(tmp_path) == before
    assert precious.read_text() == "the user's thesis\n"


def test_train_into_a_run_with_a_planted_lock_link_fails_in_one_line(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK).symlink_to(precious)
    config = write_config(tiny_flow(), tmp_path / "tiny.yaml")
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    one_error_line(result, "symbolic link", str(tmp_path / "run" / LOCK))
    assert precious.read_text() == "keep me" and not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.parametrize("name", [LOCK, *RUN_OUTPUTS, "loss.png", "samples.png", f".{CHECKPOINT}{TMP_SUFFIX}"])
def test_a_dangling_link_named_like_a_run_file_is_never_written_through(name, run_dir, tmp_path):
    """A relative link to a name that does not exist yet, outside the run: resuming (or failing to) creates
    nothing at its target. The hostile sweep's first version planted such links, and a lock opened without
    O_NOFOLLOW then wrote its pid through one into the folder the sweep was started from."""
    run, outside = tmp_path / "sandbox" / "run", tmp_path / "outside"
    outside.mkdir()
    shutil.copytree(run_dir, run)
    (run / name).unlink(missing_ok=True)
    (run / name).symlink_to(Path("..", "..", "outside", "missing"))
    with contextlib.suppress(KirchhoffError):  # refusing is fine; writing through the link is not
        train(tiny_flow("train.epochs=1"), run, resume=True, progress=False)
    assert list(outside.iterdir()) == []
    assert not (run / name).is_symlink() or os.readlink(run / name) == str(Path("..", "..", "outside", "missing"))


def test_only_kirchhoffnets_own_temporary_files_of_run_outputs_are_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    precious = tmp_path / "precious"
    precious.write_text("x")
    ours = [run / f".{CHECKPOINT}.ab_cd123{TMP_SUFFIX}", run / f".metrics.json.0a1b2c3d{TMP_SUFFIX}"]
    foreign = [
        run / ".notes.tmp",  # the old suffix: a user's file
        run / f".{CHECKPOINT}.tmp",
        run / f".thesis.tex.ab_cd123{TMP_SUFFIX}",  # our pattern, but not a file a run writes
        run / f".{CHECKPOINT}.short{TMP_SUFFIX}",  # not mkstemp's eight random characters
        run / f".{CHECKPOINT}.ab_cd123.extra{TMP_SUFFIX}",
    ]
    for path in ours + foreign:
        path.write_text("draft")
    link = run / f".metrics.json.zzzzzzzz{TMP_SUFFIX}"
    link.symlink_to(precious)
    lock = RunLock(run)
    lock.release()
    assert not any(path.exists() for path in ours)
    assert all(path.read_text() == "draft" for path in foreign)
    assert link.is_symlink() and precious.read_text() == "x"


@pytest.mark.parametrize("name", ["é" * 125 + ".json", "x" * 255, "checkpoint.pt"])
def test_a_target_of_any_legal_name_is_written_and_its_torn_temporary_file_recognised(name, tmp_path):
    path = write_text_atomic(tmp_path / name, "{}")
    assert path.read_text() == "{}" and _leftovers(tmp_path) == []
    fd, torn = tempfile.mkstemp(prefix=_tmp_prefix(name), suffix=TMP_SUFFIX, dir=tmp_path)  # as a killed write
    os.close(fd)
    assert remove_orphans(tmp_path, [name]) == [Path(torn)] and path.read_text() == "{}"


@pytest.mark.parametrize("kind", ["training", "diffusion"])
def test_every_file_a_run_writes_is_a_recorded_output(kind, run_dir, ring_run):
    """The orphan list must name every output, or torn writes of an unlisted one would stay forever."""
    folder = run_dir if kind == "training" else ring_run
    written = {p.name for p in folder.iterdir() if p.is_file() and p.name != LOCK}
    assert written and written <= set(RUN_OUTPUTS), written - set(RUN_OUTPUTS)
    assert {CHECKPOINT, "model.safetensors", "config.yaml", "metrics.json"} <= written


@pytest.mark.needs_dataset
def test_every_file_a_latent_diffusion_run_writes_is_a_recorded_output(tmp_path):
    from kirchhoffnet.data.images import IMAGE_SETS

    if not (Path(IMAGE_SETS["fashion_mnist"].default_root) / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    (tmp_path / "latent.yaml").write_text(
        "task: diffusion\ndata: latent\nthreads: 1\nmodel: {kind: crossbar, width: 4}\n"
        "latent: {max_train_images: 90, image_size: 8, vae_epochs: 1, classifier_epochs: 1}\n"
        "train: {epochs: 1, steps_per_epoch: 1, batch_size: 16, lr: 0.003}\nsample: {steps: 5}\n"
        "evaluate: {num_samples: 30}\n"
    )
    result = CliRunner().invoke(app, ["train", str(tmp_path / "latent.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    written = {p.name for p in (tmp_path / "run").iterdir() if p.is_file() and p.name != LOCK}
    assert "vae.safetensors" in written
    assert written <= set(RUN_OUTPUTS), written - set(RUN_OUTPUTS)


# --- run names --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_run_name_is_a_config_error_and_nothing_is_written(name, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError, match=r"^name: .* cannot name a run directory: "):
        train(tiny_flow(name=name), progress=False)
    assert list(tmp_path.iterdir()) == [work] and list(work.iterdir()) == []


def test_a_hostile_run_name_through_the_cli_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "bad.yaml"
    write_config(tiny_flow(), config)
    config.write_text(config.read_text() + "name: ../../escaped\n")
    result = CliRunner().invoke(app, ["train", str(config)])
    one_error_line(result, "name:", "'../../escaped'", "cannot name a run directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize("name", ["../../escaped", "-rf", ".hidden", "a/b"])
def test_a_diffusion_config_whose_name_cannot_name_a_run_is_refused(name, tmp_path, monkeypatch):
    """A diffusion config goes to runs/NAME like every task: a hostile name is one line and writes nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ring.yaml").write_text(TINY_RING + f"name: {name!r}\n")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "ring.yaml")])
    one_error_line(result, "name:", "cannot name a run directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ring.yaml"]


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=140))
def test_an_accepted_run_name_is_exactly_one_component_inside_runs(name):
    try:
        check_run_name(name)
    except ConfigError as exc:
        assert len(str(exc)) < 400 and "\n" not in str(exc)
        return
    path = Path("runs") / name
    assert path.parent == Path("runs") and path.name == name and name not in (".", "..")
    assert not name.startswith(("-", ".")) and "\0" not in name and len(name.encode()) <= 128


@pytest.mark.parametrize("name", ["kirchhoffnet-small", "fashion_mnist-small-hw", "U4", "run 2 (retry)", "σ-sweep"])
def test_ordinary_run_names_are_accepted(name):
    assert check_run_name(name) == name


# --- output paths of every command -----------------------------------------------------------------------------


def _commands(run: Path, ring: Path, config: Path, ring_config: Path) -> dict[str, Callable[[str], list[str]]]:
    """Every command that writes, as ``out path -> arguments``; the first group takes a folder, the rest a file."""
    r, d = str(run), str(ring)
    return {
        "train": lambda out: ["train", str(config), "--out", out],
        "eval": lambda out: ["eval", r, "--out", out],
        "sample": lambda out: ["sample", r, "-n", "8", "--out", out],
        "report": lambda out: ["report", r, "--out", out],
        "hw report": lambda out: ["hw", "report", r, "--samples", "2", "--out", out],
        "hw montecarlo": lambda out: ["hw", "montecarlo", r, "--trials", "2", "--points", "8", "--out", out],
        "hw quantize": lambda out: ["hw", "quantize", r, "--points", "8", "--out", out],
        "hw noise": lambda out: ["hw", "noise", r, "--out", out],
        "train (diffusion)": lambda out: ["train", str(ring_config), "--out", out],
        "diffusion spice": lambda out: ["diffusion", "spice", d, "--out", out],
        "spice export": lambda out: ["spice", "export", r, "--out", out],
        "spice verify --json": lambda out: ["spice", "verify", r, "--json", out],
        "spice verify --plot": lambda out: ["spice", "verify", r, "--plot", out],
        "spice iv --json": lambda out: ["spice", "iv", r, "--json", out],
        "diffusion sample": lambda out: ["diffusion", "sample", d, "-n", "8", "--solver", "euler", "--out", out],
        "diffusion compare": lambda out: ["diffusion", "compare", d, "--out", out],
    }


FOLDER_COMMANDS = ["train", "eval", "sample", "report", "hw report", "hw montecarlo", "hw quantize", "hw noise"]
FOLDER_COMMANDS += ["train (diffusion)", "diffusion spice"]
FILE_COMMANDS = ["spice export", "spice verify --json", "spice verify --plot", "spice iv --json"]
FILE_COMMANDS += ["diffusion sample", "diffusion compare"]


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only for real: ``chattr +i`` binds root too; others get ``chmod 555``."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("this file system does not let root make a folder immutable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def _hazard(kind: str, root: Path, file_target: bool) -> tuple[str, str]:
    """A hostile output path under ``root`` and a fragment its error message must hold."""
    leaf = "result.png" if file_target else "results"
    (root / "taken").write_text("a user's file")
    (root / "dangling").symlink_to(root / "missing")
    (root / "folder").mkdir()
    (root / "locked").mkdir()
    if kind == "occupied":  # a file where a folder goes, a folder where a file goes
        return (str(root / "folder"), "is a directory") if file_target else (str(root / "taken"), "it is a file")
    if kind == "under a file":
        return str(root / "taken" / leaf), f"{root / 'taken'} is a file"
    if kind == "dangling link":
        return (
            (str(root / "dangling" / leaf), "dangling symbolic link")
            if file_target
            else (
                str(root / "dangling"),
                "dangling symbolic link",
            )
        )
    if kind == "name too long":
        return str(root / ("n" * 300 + leaf)), "over 255 bytes"
    return str(root / "locked" / leaf), str(root / "locked")


HAZARDS = ["occupied", "under a file", "dangling link", "name too long", "read-only"]
"""(A NUL byte in ``--out`` never reaches a command: click refuses it as a usage error; the hypothesis test
below gives it to :func:`prepare_out_dir`.)"""


@pytest.fixture(scope="module")
def commands(run_dir, ring_run, tmp_path_factory):
    inputs = tmp_path_factory.mktemp("inputs")
    config = write_config(tiny_flow(), inputs / "tiny.yaml")
    (inputs / "ring.yaml").write_text(TINY_RING)
    return _commands(run_dir, ring_run, config, inputs / "ring.yaml")


@pytest.mark.parametrize("hazard", HAZARDS)
@pytest.mark.parametrize("command", FOLDER_COMMANDS + FILE_COMMANDS)
def test_every_hostile_output_path_of_every_command_is_one_line_and_touches_nothing(
    command, hazard, commands, tmp_path
):
    root = tmp_path / "area"
    root.mkdir()
    out, fragment = _hazard(hazard, root, command in FILE_COMMANDS)
    before = snapshot(root)
    if hazard == "read-only":
        with read_only(root / "locked"):
            result = CliRunner().invoke(app, commands[command](out))
    else:
        result = CliRunner().invoke(app, commands[command](out))
    one_error_line(result, fragment)
    assert snapshot(root) == before


# --- failures inside a write ------------------------------------------------------------------------------------


@pytest.fixture
def read_only_file_system(tmp_path, monkeypatch) -> Path:
    """A folder whose every create fails as on a read-only mount (EROFS), though it looks writable."""
    folder = tmp_path / "mnt"
    folder.mkdir()
    real_open, real_mkdir = os.open, os.mkdir

    def inside(path: object) -> bool:
        return os.path.abspath(os.fsdecode(path)).startswith(str(folder))  # type: ignore[arg-type]

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if inside(path) and flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    return folder


@pytest.mark.parametrize(
    "command", ["train", "train (diffusion)", "eval", "report", "spice export", "diffusion sample"]
)
def test_a_read_only_file_system_found_while_writing_is_one_line(command, commands, read_only_file_system):
    out = read_only_file_system / ("result.png" if command in FILE_COMMANDS else "results")
    result = CliRunner().invoke(app, commands[command](str(out)))
    one_error_line(result, "read-only file system while", str(read_only_file_system))
    assert list(read_only_file_system.iterdir()) == []


class DiskFull:
    """``open`` for the checkpoint writer whose handle accepts ``budget`` bytes, then fails with ENOSPC."""

    def __init__(self, budget: int, after_calls: int = 0) -> None:
        self.budget, self.after_calls, self.calls = budget, after_calls, 0

    def __call__(self, path, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        handle = open(path, mode, *args, **kwargs)  # noqa: SIM115 - the caller closes it
        self.calls += 1
        if self.calls <= self.after_calls:
            return handle
        budget = self.budget
        write = handle.write

        def full_write(data):  # type: ignore[no-untyped-def]
            nonlocal budget
            if len(data) > budget:
                write(bytes(memoryview(data)[:budget]))
                budget = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            budget -= len(data)
            return write(data)

        handle.write = full_write
        return handle


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(TMP_SUFFIX))


def test_a_full_disk_mid_checkpoint_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    first = {"model": {"w": torch.ones(3)}, "epoch": 1}
    training_state.save_checkpoint(path, first)
    monkeypatch.setattr(training_state, "open", DiskFull(budget=300), raising=False)
    with pytest.raises(StorageError) as caught:
        training_state.save_checkpoint(path, {"model": {"w": torch.zeros(3000)}, "epoch": 2})
    assert str(caught.value) == f"no space left on device while writing {path}; the previous file is intact"
    assert caught.value.errno == errno.ENOSPC
    kept = torch.load(path, weights_only=True)  # the bytes of the first write, whole (not a full training state)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.ones(3))
    assert _leftovers(tmp_path) == []


def test_train_on_a_disk_that_fills_up_stops_in_one_line_and_resumes_from_the_last_checkpoint(tmp_path, monkeypatch):
    config = write_config(tiny_flow("train.epochs=2"), tmp_path / "tiny.yaml")
    run = tmp_path / "run"
    monkeypatch.setattr(training_state, "open", DiskFull(budget=1000, after_calls=1), raising=False)
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(run)])
    one_error_line(result, f"no space left on device while writing {run / CHECKPOINT}; the previous file is intact")
    assert load_checkpoint(run / CHECKPOINT)["epoch"] == 1 and _leftovers(run) == []
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(run), "--resume"])
    assert result.exit_code == 0, result.output


ERRNOS = [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR]
ERRNOS += [errno.ELOOP, errno.EISDIR, errno.EIO, errno.ENAMETOOLONG]


@pytest.mark.parametrize("stage", ["mkstemp", "write", "fsync", "replace"])
@pytest.mark.parametrize("code", ERRNOS, ids=errno.errorcode.get)
def test_every_os_failure_at_every_stage_of_a_write_is_one_storage_error_keeping_the_file(code, stage, tmp_path):
    path = write_text_atomic(tmp_path / "metrics.json", "previous")
    failure = OSError(code, os.strerror(code))

    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise failure

    def write(tmp: Path) -> None:
        tmp.write_text("half")
        if stage == "write":
            fail()

    with pytest.MonkeyPatch.context() as patch:
        if stage != "write":
            target = {"mkstemp": (tempfile, "mkstemp"), "fsync": (os, "fsync"), "replace": (os, "replace")}[stage]
            patch.setattr(*target, fail)
        with pytest.raises(StorageError) as caught:
            atomic_write(path, write)
    reason = os.strerror(code)
    assert str(caught.value) == f"{reason[0].lower()}{reason[1:]} while writing {path}; the previous file is intact"
    assert caught.value.errno == code and path.read_text() == "previous" and _leftovers(tmp_path) == []


FULL_DISK_SCRIPT = """
import resource, signal, sys
from pathlib import Path
import numpy as np, torch
from kirchhoffnet.errors import StorageError
from kirchhoffnet.io import save_npy_atomic, write_json_atomic
from kirchhoffnet.io.figures import save_figure
from kirchhoffnet.training._state import save_checkpoint
from safetensors.torch import save_file
from kirchhoffnet.io._atomic import atomic_write
import matplotlib.pyplot as plt

folder = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
big = np.zeros(100_000, np.float32)
fig = plt.figure()
plt.plot(big)
plt.title("x" * 2000)
writers = {
    "a.json": lambda p: write_json_atomic(p, {"x": big.tolist()}),
    "a.npy": lambda p: save_npy_atomic(p, big),
    "a.safetensors": lambda p: atomic_write(p, lambda tmp: save_file({"x": torch.from_numpy(big)}, str(tmp))),
    "a.pt": lambda p: save_checkpoint(p, {"model": {"x": torch.from_numpy(big)}}),
    "a.png": lambda p: save_figure(fig, p),
}
for name, write in writers.items():
    try:
        write(folder / name)
        print(name, "no error")
    except StorageError as exc:
        print(name, exc)
"""


def test_every_writer_maps_a_real_write_failure_to_one_line_and_keeps_the_previous_file(tmp_path):
    """RLIMIT_FSIZE makes the kernel fail the writes (EFBIG) in torch's, safetensors', libpng's and
    numpy's own code, as a full disk would; each must surface as one StorageError naming the file."""
    names = ["a.json", "a.npy", "a.safetensors", "a.pt", "a.png"]
    for name in names:
        write_text_atomic(tmp_path / name, f"previous {name}")
    child = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)],
        env={**environment(), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    lines = child.stdout.strip().splitlines()
    assert len(lines) == len(names), child.stdout
    for name, line in zip(names, lines, strict=True):
        assert line == f"{name} file too large while writing {tmp_path / name}; the previous file is intact"
        assert (tmp_path / name).read_text() == f"previous {name}"
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="needs ngspice")
def test_a_read_only_temporary_folder_for_ngspice_is_one_error(tmp_path, monkeypatch):
    from kirchhoffnet.spice._runner import run_ngspice

    locked = tmp_path / "tmp"
    locked.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(locked))
    with read_only(locked), pytest.raises(StorageError, match=rf"while writing the netlist to {locked}$"):
        run_ngspice("title\n.end\n")
    assert list(locked.iterdir()) == []


# --- diffusion runs are not overwritten: the trainer's guards hold for a diffusion config -----------------------


def test_train_of_a_diffusion_config_into_a_trained_run_refuses_and_keeps_the_model(ring_run, tmp_path):
    (tmp_path / "ring.yaml").write_text(TINY_RING.replace("seed: 3", "seed: 4"))
    before = snapshot(ring_run)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "ring.yaml"), "--out", str(ring_run)])
    one_error_line(result, str(ring_run), f"already holds a run ({CHECKPOINT}); pass --resume", "choose another --out")
    assert snapshot(ring_run) == before


def test_resuming_a_diffusion_run_with_another_config_refuses_and_keeps_the_model(ring_run, tmp_path):
    (tmp_path / "ring.yaml").write_text(TINY_RING.replace("seed: 3", "seed: 4").replace("width: 8", "width: 6"))
    before = snapshot(ring_run)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "ring.yaml"), "--out", str(ring_run), "--resume"])
    one_error_line(result, f"cannot resume {ring_run} with a different config:", "model.width", "seed")
    assert snapshot(ring_run) == before


@pytest.mark.parametrize("kind", ["train", "diffusion"])
@pytest.mark.parametrize("deleted", [(CHECKPOINT,), (CHECKPOINT, "model.safetensors")])
def test_a_new_run_never_replaces_another_runs_files_even_without_its_model_or_checkpoint(
    kind, deleted, run_dir, ring_run, tmp_path
):
    """A finished run whose checkpoint.pt (and model) was deleted, and a run killed before its first
    checkpoint, still hold files a new run in the same --out would replace."""
    copy = tmp_path / "copy"
    shutil.copytree(run_dir if kind == "train" else ring_run, copy)
    for name in deleted:
        (copy / name).unlink()
    before = snapshot(copy)
    if kind == "train":
        config = write_config(tiny_flow("train.epochs=1"), tmp_path / "tiny.yaml")
    else:
        config = tmp_path / "ring.yaml"
        config.write_text(TINY_RING)
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(copy), "--no-progress"])
    one_error_line(result, str(copy), "already holds another run (config.yaml", "choose another --out")
    assert snapshot(copy) == before


def test_train_of_a_diffusion_config_into_a_directory_another_process_trains_in_is_refused(tmp_path):
    (tmp_path / "ring.yaml").write_text(TINY_RING)
    lock = RunLock(tmp_path / "run")
    try:
        result = CliRunner().invoke(app, ["train", str(tmp_path / "ring.yaml"), "--out", str(tmp_path / "run")])
    finally:
        lock.release()
    one_error_line(result, "is in use by another process")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK]


def test_a_killed_diffusion_runs_torn_files_are_removed_and_it_resumes(ring_run, tmp_path):
    """Torn temporary files of a diffusion run's outputs are the trainer's to remove; a user's are kept."""
    copy = tmp_path / "copy"
    shutil.copytree(ring_run, copy)
    fd, torn = tempfile.mkstemp(prefix=_tmp_prefix("model.safetensors"), suffix=TMP_SUFFIX, dir=copy)
    os.close(fd)
    (copy / ".notes.tmp").write_text("a user's file")
    result = CliRunner().invoke(app, ["train", str(copy), "--resume", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert not Path(torn).exists() and (copy / ".notes.tmp").read_text() == "a user's file"
    assert _leftovers(copy) == []


# --- hypothesis: any output path --------------------------------------------------------------------------------

PARTS = ["taken", "folder", "dangling", "loop", "folderlink", "takenlink", "new", "..", ".", "n" * 256, "a\0b"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PARTS), min_size=1, max_size=4))
@example(["new", "..", "taken"])  # found by this test: mkdir made "new" before '..' met the file
@example(["loop", "taken"])  # found by this test: ELOOP escaped from lstat
@example(["folderlink", "..", "new"])
@example(["dangling", "new"])
@example(["taken", "new"])
def test_any_output_path_is_a_folder_afterwards_or_one_error_and_nothing_changed(parts):
    with tempfile.TemporaryDirectory(prefix="fs-") as scratch:
        area = Path(scratch) / "x" / "y" / "area"  # room for ".." to climb without leaving the scratch folder
        area.mkdir(parents=True)
        (area / "taken").write_text("a user's file")
        (area / "folder").mkdir()
        (area / "dangling").symlink_to(area / "missing")
        (area / "loop").symlink_to(area / "loop")
        (area / "folderlink").symlink_to(area / "folder")
        (area / "takenlink").symlink_to(area / "taken")
        before = snapshot(Path(scratch))
        try:
            made = prepare_out_dir(area.joinpath(*parts))
        except KirchhoffError as exc:
            assert isinstance(exc, (ConfigError, StorageError)) and "\n" not in str(exc) and len(str(exc)) < 700
            assert snapshot(Path(scratch)) == before
            return
        after = snapshot(Path(scratch))
        assert made.is_dir() and all(after[path] == entry for path, entry in before.items())
        assert all(entry == ("dir", "") for path, entry in after.items() if path not in before)


def test_a_busy_run_directory_is_refused_before_anything_is_written(tmp_path):
    """A second writer is refused before it touches anything (the lock, not a race, decides)."""
    run = tmp_path / "run"
    lock = RunLock(run)
    try:
        with pytest.raises(TrainingError, match="in use by another process"):
            train(tiny_flow(), run, progress=False)
    finally:
        lock.release()
    assert sorted(p.name for p in run.iterdir()) == [LOCK]
