"""The train / eval / sample / report commands: outputs (stdout the JSON result alone where it is JSON), and
one-line errors with exit code 2 for an invalid request and 1 for a failure while running."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.config import write_config

from ..training.helpers import tiny_flow

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny 2-D flow run, trained through the CLI."""
    base = tmp_path_factory.mktemp("cli")
    config = write_config(tiny_flow("train.epochs=2"), base / "tiny.yaml")
    result = runner.invoke(app, ["train", str(config), "--out", str(base / "run"), "--seed", "3", "--set", "grid=12"])
    assert result.exit_code == 0, result.output
    assert "finished: nll_nats = " in result.output
    return base / "run"


def test_train_writes_the_run_directory_with_overrides(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["seed"] == 3 and metrics["epochs_completed"] == 2
    assert "grid: 12" in (run_dir / "config.yaml").read_text()


def test_eval_of_a_run_directory(run_dir):
    result = runner.invoke(app, ["eval", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["nll_nats"] > 0 and result.stderr.startswith("wrote ")  # stdout: JSON only
    written = json.loads((run_dir / "eval" / "metrics.json").read_text())
    trained = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert written["nll_nats"] == pytest.approx(trained["nll_nats"], rel=1e-6)  # same model, same held-out data
    assert (run_dir / "eval" / "samples.png").is_file()


def _eval_nll(run_dir, out, *settings: str) -> dict:
    result = runner.invoke(app, ["eval", str(run_dir), "--out", str(out), *(f"--set={s}" for s in settings)])
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def test_eval_under_another_solver_scores_the_same_model(run_dir, tmp_path):
    trained = json.loads((run_dir / "metrics.json").read_text())["test"]["nll_nats"]
    config = (run_dir / "config.yaml").read_text()
    tight = _eval_nll(run_dir, tmp_path / "tight", "solver.rtol=1e-8", "solver.atol=1e-8")
    coarse = _eval_nll(run_dir, tmp_path / "coarse", "solver.method=euler", "solver.step_size=0.5")
    # The trained solve (dopri5 at 1e-3) is the tight solve to its tolerance; two Euler steps are not.
    assert tight["nll_nats"] == pytest.approx(trained, abs=2e-3)
    assert abs(coarse["nll_nats"] - trained) > 10 * abs(tight["nll_nats"] - trained)
    assert tight["solver"]["rtol"] == 1e-8 and tight["solver"]["method"] == "dopri5"
    assert coarse["solver"]["method"] == "euler" and coarse["solver"]["step_size"] == 0.5
    assert (run_dir / "config.yaml").read_text() == config  # the run itself is left as it was


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["train.lr=1"], "--set 'train.lr=1': eval changes only the solver (solver.KEY=VALUE)"),
        (["solver.method=nope"], "solver.method: "),
        (["solver.rtol=-1"], "solver.rtol: "),
        (["solver"], "--set 'solver': eval changes only the solver"),
        (["solver.method=rk4", "data.test_subset=5"], "--set 'data.test_subset=5': eval changes only"),
        (["solver.method=rk4", "solver.step_size=1e-9"], "solver.step_size: 1e-09 makes 1e+09 rk4 steps"),
    ],
)
def test_eval_settings_other_than_the_solver_are_one_line(run_dir, tmp_path, settings, message):
    line = _error(["eval", str(run_dir), "--out", str(tmp_path / "e"), *(f"--set={s}" for s in settings)])
    assert message in line
    assert not (tmp_path / "e").exists()  # refused before anything is written


def test_eval_settings_on_an_original_result_are_refused(original_dir, tmp_path):
    line = _error(["eval", str(original_dir("twomoon")), "--out", str(tmp_path / "e"), "--set", "solver.rtol=1e-6"])
    assert "--set applies to run directories" in line and not (tmp_path / "e").exists()


def test_sample_writes_points_and_a_plot(run_dir, tmp_path):
    result = runner.invoke(app, ["sample", str(run_dir), "-n", "64", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)  # stdout: JSON only
    import numpy as np

    assert np.load(tmp_path / "samples.npy").shape == (64, 2) and (tmp_path / "samples.png").is_file()


def test_report_writes_markdown_and_json(run_dir, tmp_path):
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| flow2d | flow2d | twomoon | test NLL (nats) |" in result.output  # name defaults to the task
    rows = json.loads((tmp_path / "report.json").read_text())
    assert rows[0]["metric"] == "nll_nats" and (tmp_path / "report.md").read_text().startswith("| run |")
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert rows[0]["stderr"] == test["nll_stderr"]  # the held-out NLL is reported with its standard error
    assert f"± {test['nll_stderr']:.2g}" in result.output
    assert "wrote" not in result.stdout and result.stderr.startswith("wrote ")


def test_resume_a_run_directory_by_its_path(run_dir):
    result = runner.invoke(app, ["train", str(run_dir), "--resume", "--seed", "3", "--set", "grid=12"])
    assert result.exit_code == 0, result.output  # already finished: evaluates again, trains nothing
    assert "after 2 epochs" in result.output


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2), result.output  # by the error's class: see the exit-code test below
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output  # one line, no traceback
    return lines[0]


def test_bad_config_values_are_one_line(tmp_path):
    config = write_config(tiny_flow(), tmp_path / "tiny.yaml")
    line = _error(["train", str(config), "--out", str(tmp_path / "r"), "--set", "train.lr=-1"])
    assert line.startswith("error: train.lr: must be > 0.0, got -1")
    line = _error(["train", str(config), "--out", str(tmp_path / "r"), "--set", "solver.rtol=-1e-3"])
    assert line.startswith("error: solver.rtol: must be > 0.0")
    line = _error(["train", str(config), "--set", "circuit.times=[1, 0]"])
    assert "circuit.times: time slices must increase strictly" in line
    line = _error(["train", str(config), "--device", "tpu"])
    assert "device: must be one of 'cpu' or 'cuda', got 'tpu'" in line


def test_unknown_keys_and_missing_files_are_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("task: flow2d\ndata: {name: twomoon}\nlearning_rate: 3\n")
    assert "learning_rate: unknown key" in _error(["train", str(tmp_path / "bad.yaml")])
    assert "config file" in _error(["train", str(tmp_path / "missing.yaml")])


def test_missing_data_is_one_line(tmp_path):
    config = tmp_path / "cifar.yaml"
    config.write_text(
        "task: classify\n"
        f"data: {{name: cifar10, root: {tmp_path / 'nothing'}}}\n"
        "circuit: {topology: {name: mix_connect, channels: 3, height: 32, width: 32, kernel_size: 4,"
        " hidden_nodes: 10}}\n"
        "train: {epochs: 1, batch_size: 4, lr: 1.0e-3}\n"
    )
    line = _error(["train", str(config), "--out", str(tmp_path / "run")])
    assert line.startswith("error: cifar10 train file data_batch_1 not found in ")
    assert "data.download: true" in line


def test_eval_and_sample_of_something_else_are_one_line(tmp_path):
    assert "is not a result directory" in _error(["eval", str(tmp_path)])
    assert "is not a run directory: it has no config.yaml" in _error(["sample", str(tmp_path), "-n", "3"])
    assert "holds no metrics.json" in _error(["report", str(tmp_path)])


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "sample", str(tmp_path), "-n", "3"])
    assert result.exit_code != 0 and result.exception is not None


def test_eval_of_an_original_result_still_works(original_dir, tmp_path):
    path = original_dir("twomoon")
    result = runner.invoke(app, ["eval", str(path), "--out", str(tmp_path), "--samples", "300", "--batch", "300"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The original checkpoint's held-out NLL is about 1.03 nats; 300 points give it to about ±0.1.
    assert metrics["dataset"] == "twomoon" and 0.8 < metrics["nll_nats"] < 1.3


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_training_off_a_terminal_reports_progress_as_lines(tmp_path, monkeypatch, flag):
    """A log file gets whole progress lines (here one per millisecond); ``--no-progress`` none."""
    monkeypatch.setenv("KIRCHHOFFNET_PROGRESS_S", "0.001")
    config = write_config(tiny_flow("train.epochs=2"), tmp_path / "tiny.yaml")
    result = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), "--set", "grid=12", *flag])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr
    if flag:
        assert result.stderr == ""
    else:
        steps = [line for line in result.stderr.splitlines() if line.startswith("flow2d:")]
        assert len(steps) >= 2 and "8/8" in steps[-1] and "loss=" in steps[-1], result.stderr


def test_hw_report_writes_into_the_run_and_prints_json(run_dir, tmp_path):
    """Without --out a study goes under the analysed run (two runs' studies cannot collide); --out still wins."""
    result = runner.invoke(app, ["hw", "report", str(run_dir), "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["latency_s"] > 0 and (run_dir / "hw" / "hw_report.json").is_file()
    args = ["hw", "quantize", str(run_dir), "--bits", "4", "--scheme", "uniform", "--points", "50"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (run_dir / "hw" / "quantization.json").is_file() and "wrote" not in result.stdout
    result = runner.invoke(app, ["hw", "report", str(run_dir), "--samples", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0 and (tmp_path / "hw_report.json").is_file()


def test_exit_codes_tell_an_invalid_request_from_a_failure(run_dir, tmp_path):
    assert runner.invoke(app, ["train", "--no-such-option"]).exit_code == 2  # click's usage error
    result = runner.invoke(app, ["train", str(run_dir / "config.yaml"), "--set", "train.lr=-1"])
    assert result.exit_code == 2 and "train.lr" in result.stderr  # an invalid config value
    result = runner.invoke(app, ["sample", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and result.stderr.startswith("error: ")  # a valid request whose input is missing
    result = runner.invoke(app, ["train", str(run_dir / "config.yaml"), "--out", str(run_dir)])
    assert result.exit_code == 1 and "already holds a run" in result.stderr  # the run directory is taken


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["hw", "quantize", "--bits", "2,4", "--scheme", "uniform", "--points", "50"], "quantize uniform:"),
        (["hw", "noise", "--capacitance", "1fF,1pF", "--samples", "8", "--points", "50"], "noise:"),
    ],
)
def test_hardware_studies_off_a_terminal_report_progress_as_lines(run_dir, tmp_path, monkeypatch, command, prefix):
    """A log file gets whole progress lines (one per millisecond here) from the long hardware studies."""
    monkeypatch.setenv("KIRCHHOFFNET_PROGRESS_S", "0.001")
    result = runner.invoke(app, [*command[:2], str(run_dir), *command[2:], "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert lines and "\r" not in result.stderr, result.stderr
