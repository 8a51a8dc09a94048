"""Bad configs: hypothesis mutates every task's shipped config; each result validates or fails in one line.

Default: 100 mutated configs per task. The full run (1,000 per task) is
``KIRCHHOFFNET_FUZZ_EXAMPLES=1000 PYTHONPATH=src python -m pytest tests/reliability/test_configs.py -s``;
it prints how many configs it tried and how many were accepted. A sample goes through the CLI.
Diffusion configs are configs of the shared family (``task: diffusion``): the same ``parse_config``,
the same pre-flight, the same ``kirchhoffnet train``.
"""

from __future__ import annotations

import copy
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.config import TASKS, check_memory, parse_config, preflight
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.runtime import LIMIT_ENV

from .fuzz import finite_floats, load, mutated

EXAMPLES = int(os.environ.get("KIRCHHOFFNET_FUZZ_EXAMPLES", "100"))
CLI_EXAMPLES = max(10, EXAMPLES // 10)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared machine: timing varies tenfold
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same configs on every run: a failure reproduces
    database=None,
)
TRAINING = {
    "flow2d": "flow2d/twomoon.yaml",
    "regression": "regression/kirchhoffnet-small.yaml",
    "regression-mlp": "regression/mlp.yaml",
    "classify": "classify/fashion_mnist_small.yaml",
    "classify-odenet": "classify/fashion_mnist_odenet_small.yaml",
    "density": "density/U1.yaml",
    "mnist_gen": "mnist_gen/mnist.yaml",
}
DIFFUSION = {
    "diffusion-ring": "diffusion/ring.yaml",
    "diffusion-ring-kirchhoffnet": "diffusion/ring_kirchhoffnet.yaml",
    "diffusion-latent": "diffusion/latent.yaml",
}
# "key.path: message"; the key's first part is a setting of the task's config (or "config" for the whole)
KEY_FIRST = re.compile(r"^(?P<top>[\w-]+)(?:\[\d+\])*(?:\.[\w\[\]-]+)*: \S")
SOURCE = "fuzz.yaml"
tally: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    if tally:
        counts = ", ".join(f"{k} {tally[k]} ({tally[k + ':ok']})" for k in _tasks() if tally[k])
        cli = ", ".join(f"{k} {v}" for k, v in tally.items() if k.endswith("(cli)"))
        huge = ", ".join(f"{k} {v}" for k, v in tally.items() if k.endswith("(oversized)"))
        print(f"\nconfigs fuzzed (accepted): {counts}; through the CLI: {cli}; oversized, all refused: {huge}")


def _tasks() -> list[str]:
    return [*TRAINING, *DIFFUSION]


def _through_yaml(data: dict[str, Any]) -> Any:
    return yaml.safe_load(yaml.safe_dump(data))


def _check_error(
    exc: ConfigError, done: list[tuple[str, tuple[Any, ...]]], fields: set[str], parsing: bool = True
) -> None:
    message = str(exc)
    assert "\n" not in message and "Traceback" not in message, message
    named = KEY_FIRST.match(message)
    assert named, f"no key named first: {message}"
    assert named["top"] in fields | {"config", "task"}, f"the key named first is not in the config: {message}"
    if parsing:  # validation names the file it read; the pre-flight runs on a validated config
        assert message.endswith(f"(in {SOURCE})"), f"the file is not named: {message}"
    kind, path = done[0]
    if len(done) == 1 and kind == "unknown":
        assert (f"{path[-1]}" in message and "unknown key" in message.lower()) or "extra" in message.lower(), message


def _fuzz(task: str, base: dict[str, Any], case: Any) -> None:
    """Validate a mutated config, then run the pre-flight every command runs before building anything."""
    data, done = case
    tally[task] += 1
    fields = set(TASKS[base["task"]].model_fields) | {str(key) for key in data}  # settings, or a misspelt one
    try:
        config = parse_config(_through_yaml(data), SOURCE)
    except ConfigError as exc:
        _check_error(exc, done, fields)
        return
    assert finite_floats(config.model_dump(mode="python")), f"accepted a non-finite number: {done}"
    try:
        preflight(config)
    except ConfigError as exc:
        _check_error(exc, done, fields, parsing=False)
        return
    tally[task + ":ok"] += 1


def _fuzz_test(task: str, base: dict[str, Any]):  # type: ignore[no-untyped-def]
    @FUZZ
    @given(case=mutated(base))
    def check(case: Any) -> None:
        _fuzz(task, base, case)

    return check


def _diffusion_base(relative: str) -> dict[str, Any]:
    """The shipped config with every section written out (rram, analog, score_matching, ...) as a run's
    config.yaml holds it, so that the defaults are mutated as well."""
    full = parse_config(load(relative), relative).model_dump(mode="json")
    assert full["task"] == "diffusion" and "rram" in full and "analog" in full, full
    return full


@pytest.mark.parametrize("task", list(TRAINING))
def test_mutated_training_configs_validate_or_name_the_key(task):
    _fuzz_test(task, load(TRAINING[task]))()


@pytest.mark.parametrize("task", list(DIFFUSION))
def test_mutated_diffusion_configs_validate_or_name_the_key(task):
    _fuzz_test(task, _diffusion_base(DIFFUSION[task]))()


CLI = settings(FUZZ, max_examples=CLI_EXAMPLES)


def _cli_case(tmp_path: Path, data: dict[str, Any], command: list[str], monkeypatch: Any, target: str) -> None:
    """Write the mutated YAML, run the command (training itself stubbed out after the pre-flight it starts
    with): exit 0, or 2 with one line."""
    calls: list[Any] = []

    def stub(config: Any, *args: Any, **kwargs: Any) -> None:
        preflight(config)  # what train() does first: a config too large to build is refused by the command
        calls.append(config)
        raise _StopAfterValidationError

    monkeypatch.setattr(target, stub)
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, [*command, str(path), "--out", str(tmp_path / "run")])
    if calls:  # validated: the run would have started
        return
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output


class _StopAfterValidationError(Exception):
    """Raised by the stubbed trainer, so that a valid config ends the command right after validation."""


@pytest.mark.parametrize("task", ["flow2d", "classify", "diffusion-ring", "diffusion-ring-kirchhoffnet"])
def test_mutated_configs_through_the_cli_exit_2_with_one_line(task, tmp_path_factory):
    """Every task, diffusion included, is trained by `kirchhoffnet train`."""
    command, target = ["train"], "kirchhoffnet.training.train"
    base = load({**TRAINING, **DIFFUSION}[task])

    @CLI
    @given(case=mutated(base))
    def check(case: Any) -> None:
        with pytest.MonkeyPatch.context() as monkeypatch:
            _cli_case(tmp_path_factory.mktemp("cli"), case[0], command, monkeypatch, target)
        tally[task + " (cli)"] += 1

    check()


SIZE_KEYS = ("num_nodes", "hidden_nodes", "height", "width", "channels", "num_edges", "repeat", "kernel_repeat")
CIRCUIT_TASKS = [task for task in TRAINING if task not in ("regression-mlp", "classify-odenet")]


@st.composite
def oversized(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
    """The base config with one size of its topology set to 10^9..10^15: valid key by key, absurd as a whole."""
    data = copy.deepcopy(base)
    topology = data["circuit"]["topology"]
    topology = topology[0] if isinstance(topology, list) else topology
    key = draw(st.sampled_from([k for k in SIZE_KEYS if k in topology or k in ("repeat", "kernel_repeat")]))
    value = draw(st.integers(10**9, 10**15))
    if key == "kernel_repeat" and topology["name"] != "mix_connect":
        key = "repeat"
    topology[key] = [value, 1] if key == "repeat" and topology["name"] in ("fully_connect", "mix_connect") else value
    return data, key, value


@pytest.mark.parametrize("task", CIRCUIT_TASKS)
def test_oversized_circuits_are_refused_in_one_line_before_they_are_built(task, monkeypatch):
    """Every 10^9-sized topology fails validation or the memory pre-flight (8 GB), never starts building."""
    monkeypatch.setenv(LIMIT_ENV, "8")
    base = load(TRAINING[task])

    @settings(FUZZ, max_examples=max(20, EXAMPLES // 5))
    @given(case=oversized(base))
    def check(case: tuple[dict[str, Any], str, int]) -> None:
        data, _, _ = case
        with pytest.raises(ConfigError) as refused:
            check_memory(parse_config(data, "fuzz.yaml"))
        message = str(refused.value)
        assert "\n" not in message and KEY_FIRST.match(message), message
        tally[task + " (oversized)"] += 1

    check()


SCORE_SIZES = {
    "crossbar": [("model", "width"), ("train", "batch_size"), ("evaluate", "num_samples")],
    "kirchhoffnet": [("model", "hidden"), ("model", "repeat"), ("model", "time_nodes"), ("train", "batch_size")],
}
STEP_KEYS = [("sample", "steps"), ("analog", "steps"), ("evaluate", "robustness_steps")]


@st.composite
def oversized_score(draw: st.DrawFn, base: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A diffusion config with one size of its score model, batch, samples or sampler steps set to 10^9..10^15."""
    data = copy.deepcopy(base)
    section, key = draw(st.sampled_from(SCORE_SIZES[data["model"]["kind"]] + STEP_KEYS))
    data.setdefault(section, {})[key] = 2 * draw(st.integers(10**9 // 2, 10**15 // 2))  # even: time_nodes
    return data, f"{section}.{key}"


@pytest.mark.parametrize("task", list(DIFFUSION))
def test_oversized_score_models_are_refused_in_one_line_before_they_are_built(task, monkeypatch):
    """A diffusion config valid key by key but 10^9-sized fails the pre-flight (8 GB), naming a size key."""
    monkeypatch.setenv(LIMIT_ENV, "8")
    base = load(DIFFUSION[task])

    @settings(FUZZ, max_examples=max(20, EXAMPLES // 5))
    @given(case=oversized_score(base))
    def check(case: tuple[dict[str, Any], str]) -> None:
        data, key = case
        with pytest.raises(ConfigError) as refused:
            preflight(parse_config(data, SOURCE))
        message = str(refused.value)
        assert "\n" not in message and KEY_FIRST.match(message), message
        sizes = {f"{s}.{k}" for s, k in SCORE_SIZES[data["model"]["kind"]]} | {"model.hidden", "evaluate.num_samples"}
        assert message.split(":")[0] in sizes | {key}, message
        tally[task + " (oversized)"] += 1

    check()
