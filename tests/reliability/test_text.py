"""Adversarial text (issue 20, class 5): hostile YAML, non-UTF-8 files, broken JSON results and raw files
each end in one ``error:`` line, in bounded time; messages never quote unbounded input.

The random-document tests run 100 examples each; ``KIRCHHOFFNET_FUZZ_EXAMPLES=1000`` runs more.
CLI usage errors (class 6) are in ``test_cli_messages.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from typer.testing import CliRunner

from kirchhoffnet._textfile import MAX_DOCUMENT_BYTES, read_json_mapping
from kirchhoffnet._yamlfile import MAX_YAML_DEPTH, apply_overrides, read_yaml_mapping
from kirchhoffnet.cli.main import app
from kirchhoffnet.config import TASKS, load_config, write_config
from kirchhoffnet.errors import ConfigError, DataError, shown
from kirchhoffnet.io.tensorfile import FORMAT as CHECKPOINT_FORMAT
from kirchhoffnet.spice import read_raw

from ..spice.test_raw import _binary, _header
from ..training.helpers import tiny_flow

EXAMPLES = int(os.environ.get("KIRCHHOFFNET_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared machine: timing varies tenfold
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same documents on every run: a failure reproduces
    database=None,
)
runner = CliRunner()
# Nine levels of nine aliases: 9^9 ≈ 3.9e8 strings from 400 bytes (a "billion laughs").
LAUGHS = "\n".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]"] + [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, 9)]
)
# Twelve anchors, each shallow, each nesting the previous eight levels deeper: deep only once expanded.
DEEP_ALIASES = "".join(f"a{k}: &a{k} {'[' * 8}{f'*a{k - 1}' if k else 1}{']' * 8}\n" for k in range(12))


def one_error_line(args: list[str], codes: tuple[int, ...] = (1, 2)) -> str:
    """Run the CLI: it must exit with one of ``codes`` and print exactly one stderr line, ``error: ...``."""
    return checked(runner.invoke(app, args), codes)


def checked(result: Any, codes: tuple[int, ...] = (1, 2)) -> str:
    """The one ``error:`` line of a CLI result that must have failed with one of ``codes``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert result.exit_code in codes, (result.exit_code, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert len(lines[0]) < 700, lines[0][:200]
    return lines[0]


# --- the YAML loader -------------------------------------------------------------------------------------------

HOSTILE_YAML = [
    (f"{LAUGHS}\ntask: flow2d\ntrain: {{epochs: *l8}}\n", "aliases expand to more than"),
    ("a: &a [1, *a]\n", "contains it"),
    ("a: &a {b: *a}\n", "contains it"),
    ("a: " + "[" * 500 + "]" * 500 + "\n", f"nested deeper than {MAX_YAML_DEPTH}"),
    ("a: " + "{b: " * 500 + "1" + "}" * 500 + "\n", f"nested deeper than {MAX_YAML_DEPTH}"),
    (DEEP_ALIASES, f"aliases nest deeper than {MAX_YAML_DEPTH}"),
    ("a: " + "9" * 5000 + "\n", "digits"),
    ("a: 2020-13-40\n", "month must be in 1..12"),
    ("a: !!python/object:os.system " + "x" * 10_000 + "\n", "could not determine a constructor"),
    ("a: [1, 2\n", "line 2"),
    ("a: '\x01'\n", "unacceptable character #x0001"),
    ("{[1]: 2}\n", "unhashable"),
    ("- 1\n- 2\n", "must hold a mapping of settings, got list"),
]


@pytest.mark.parametrize(("text", "found"), HOSTILE_YAML)
def test_hostile_yaml_is_one_bounded_line_in_milliseconds(tmp_path, text, found):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    start = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        read_yaml_mapping(path)
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400, message[:300]
    assert found in message and str(path) in message, message


def test_a_bomb_in_a_set_override_is_refused_too():
    bomb = "[" + ", ".join(f"&l{k} [{', '.join([f'*l{k - 1}' if k else 'lol'] * 9)}]" for k in range(9)) + "]"
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="aliases expand to more than"):
        apply_overrides({"train": {}}, [f"train.epochs={bomb}"])
    assert time.perf_counter() - start < 1.0


def test_size_and_encoding_limits(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "#" * MAX_DOCUMENT_BYTES)
    with pytest.raises(ConfigError, match=r"big.yaml is larger than 1024 KiB"):
        read_yaml_mapping(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("task: flow2d\nname: Müller\n".encode("latin-1"))
    with pytest.raises(
        ConfigError, match=r"latin.yaml is not UTF-8 text \(byte 20 is 0xfc\); save the config file as UTF-8"
    ):
        read_yaml_mapping(latin)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufefftask: flow2d\n".encode())  # what some editors write: still UTF-8
    assert read_yaml_mapping(bom) == {"task": "flow2d"}


def test_shared_aliases_below_the_bound_still_load(tmp_path):
    """Anchors are a YAML feature people use: a moderate expansion is fine."""
    path = tmp_path / "ok.yaml"
    path.write_text("base: &base {lr: 0.01, epochs: 3}\nfirst: *base\nsecond: {<<: *base, lr: 0.02}\n")
    assert read_yaml_mapping(path)["second"] == {"lr": 0.02, "epochs": 3}


# --- messages never quote unbounded input ------------------------------------------------------------------------


def test_shown_is_bounded_in_length_and_time():
    expanded: Any = ["lol"]
    for _ in range(30):
        expanded = [expanded] * 10  # 10^30 leaves, shared
    start = time.perf_counter()
    for value in (expanded, "x" * 10**6, 10**5000, {str(k): k for k in range(10**5)}, b"\xff" * 10**6):
        assert len(shown(value)) <= 80 and "\n" not in shown(value)
    assert time.perf_counter() - start < 0.5
    assert shown("abc") == "'abc'" and shown(1.5) == "1.5"


@pytest.mark.parametrize(
    "value",
    ["x" * 100_000, -(10**4000), [[list(range(50))] * 40] * 40, {"k" * 50_000: 1}],
    ids=["long-string", "4000-digit-int", "big-nesting", "long-key"],
)
def test_config_errors_quote_a_bounded_excerpt(tmp_path, value):
    data = tiny_flow().model_dump(mode="json")
    data["train"]["epochs"] = value
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"^train\.epochs: ") as caught:
        load_config(path)
    assert time.perf_counter() - start < 2.0
    assert len(str(caught.value)) < 500 and "\n" not in str(caught.value)


# --- configs given to the CLI ----------------------------------------------------------------------------------


def test_train_rejects_a_bomb_and_a_non_utf8_config_in_one_line(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"{LAUGHS}\ntask: flow2d\ntrain: {{epochs: *l8}}\n")
    start = time.perf_counter()
    assert "aliases expand to more than" in one_error_line(["train", str(bomb), "--out", str(tmp_path / "r")])
    assert time.perf_counter() - start < 2.0
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"task: flow2d\nname: caf\xe9\n")
    assert "is not UTF-8 text" in one_error_line(["train", str(latin), "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


KEYS = st.sampled_from(["task", "name", "seed", "circuit", "train", "data", "solver", "epochs", "topology", "<<"])
KEYS |= st.sampled_from(["model", "kind", "sde", "score_matching", "sample", "latent", "width", "ema_decay"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(list(TASKS)),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS | st.text(max_size=6), inner, max_size=5),
    max_leaves=30,
)
# Documents of one task, so that the junk reaches that task's own sections (a diffusion config's model
# union, score_matching, sde, ...) instead of failing at the task key.
TASK_DOCUMENTS = {
    "train": DOCUMENTS,
    "diffusion": st.dictionaries(KEYS | st.text(max_size=6), DOCUMENTS, max_size=6).map(
        lambda d: {**d, "task": "diffusion", "data": d.get("data", "ring")}
    ),
}


# The override makes even a valid document fail before training, so each example takes milliseconds.
@pytest.mark.parametrize("task", list(TASK_DOCUMENTS))
@FUZZ
@given(data=st.data())
def test_random_config_files_are_one_line_errors(tmp_path, task, data):
    """Random bytes and random documents as a config of `kirchhoffnet train` (every task, diffusion
    included): one error line, never a traceback, nothing written."""
    documents = TASK_DOCUMENTS[task]
    content = data.draw(
        st.one_of(
            st.binary(max_size=300),
            documents.map(lambda d: json.dumps(d).encode()),  # JSON is YAML
            documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
        )
    )
    path = tmp_path / "random.yaml"
    path.write_bytes(content)
    one_error_line(["train", str(path), "--out", str(tmp_path / "run"), "--set", "train.epochs=-1"])
    assert not (tmp_path / "run").exists()


@FUZZ
@given(text=st.text(max_size=80))
def test_random_set_values_are_one_line_errors(tmp_path, text):
    path = write_config(tiny_flow(), tmp_path / "tiny.yaml")
    one_error_line(["train", str(path), "--out", str(tmp_path / "run"), "--set", f"train.epochs={text}"])


# --- a run directory's config.yaml and metrics.json --------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny 2-D flow run, trained through the CLI."""
    base = tmp_path_factory.mktemp("text")
    config = write_config(tiny_flow("train.epochs=1"), base / "tiny.yaml")
    result = runner.invoke(app, ["train", str(config), "--out", str(base / "run"), "--set", "grid=10"])
    assert result.exit_code == 0, result.output
    return base / "run"


BROKEN_CONFIGS = {
    "latin-1": ("task: flow2d\nname: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "scanner": (b"task: flow2d\ncircuit: {topology: [\n", "is not valid YAML at line"),
    "bomb": (f"{LAUGHS}\ntask: flow2d\n".encode(), "aliases expand to more than"),
    "not-a-mapping": (b"- task\n- flow2d\n", "must hold a mapping"),
    "empty": (b"", "must hold a mapping"),
}
COMMANDS = {
    "eval": lambda run, tmp: ["eval", str(run), "--out", str(tmp / "eval")],
    "train-resume": lambda run, tmp: ["train", str(run), "--resume"],
    "sample": lambda run, tmp: ["sample", str(run), "-n", "3", "--out", str(tmp / "s.npy")],
    "hw-report": lambda run, tmp: ["hw", "report", str(run), "--out", str(tmp / "hw")],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("broken", list(BROKEN_CONFIGS))
def test_a_broken_run_config_is_one_line_for_every_command(finished_run, tmp_path, command, broken):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    content, found = BROKEN_CONFIGS[broken]
    (run / "config.yaml").write_bytes(content)
    line = one_error_line(COMMANDS[command](run, tmp_path))
    assert found in line and "config.yaml" in line, line


@pytest.mark.parametrize("task", ["diffusion", "flow2d"])
@pytest.mark.parametrize("brk", ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1e", "\x85", "\u2028"])
def test_a_key_holding_a_line_break_is_named_on_one_line(tmp_path, task, brk):
    """Found by the fuzz above: an unknown key holding a vertical tab or U+2028 (any str.splitlines break but
    \\n and \\r) was quoted as is, so the error took two lines."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"task": task, f"ab{brk}cd": 1}))
    line = one_error_line(["train", str(path), "--out", str(tmp_path / "run")])
    assert "ab cd" in line and "unknown key" in line, line


@pytest.mark.parametrize("command", ["sample", "evaluate"])
@pytest.mark.parametrize("broken", ["latin-1", "scanner", "bomb", "truncated", "old-format", "partial", "other-task"])
def test_a_broken_diffusion_run_config_is_one_line(tmp_path, command, broken):
    """A diffusion run's config.yaml is the trainer's: broken text, a config of the removed format
    (``task: ring``), one lacking the required settings, or another task's, is one line naming the key."""
    run = tmp_path / "run"
    run.mkdir()
    content, found = {
        "truncated": (b"", "task: must be one of flow2d, "),
        "old-format": (b"task: ring\nseed: 3\n", "task: must be one of flow2d, "),
        "partial": (b"task: diffusion\nseed: 3\n", ": required setting is missing"),
        "other-task": (b"task: flow2d\nseed: 3\n", ": required setting is missing"),
    }.get(broken) or BROKEN_CONFIGS[broken]
    (run / "config.yaml").write_bytes(content)
    # a readable score-model checkpoint, so that loading gets past the run-kind check to the config
    header = {"format": CHECKPOINT_FORMAT, "spec": json.dumps({"kind": "score-model"}), "metadata": "{}"}
    save_file({"w": torch.zeros(1)}, str(run / "model.safetensors"), metadata=header)
    line = one_error_line(["diffusion", command, str(run)])
    assert found in line and "config.yaml" in line, line


def _edited(metrics: dict[str, Any], edit: str) -> str:
    key, _, value = edit.partition("=")
    node = metrics
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    if value == "<delete>":
        del node[last]
    else:
        node[last] = json.loads(value)
    return json.dumps(metrics)


METRICS_EDITS = [
    "test=[1, 2]",
    'test.nll_nats="low"',
    "test.nll_stderr={}",
    "test.nll_nats=<delete>",
    "primary_metric=3",
    'primary_metric="no_such_metric"',
    "name=<delete>",
    'num_params="many"',
    "num_params=true",
    "epochs_completed=1.5",
    "train_wall_time_s=null",
    'train_cpu_time_s="fast"',
    "status=<delete>",
    'test.dataset=["twomoon"]',
]


@pytest.mark.parametrize("edit", METRICS_EDITS)
def test_report_names_a_hand_edited_metrics_file(finished_run, tmp_path, edit):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(_edited(metrics, edit))
    line = one_error_line(["report", str(finished_run), str(run), "--out", str(tmp_path / "report")])
    assert str(run / "metrics.json") in line, line
    assert not (tmp_path / "report").exists()


def test_report_names_a_truncated_or_non_utf8_metrics_file(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    text = (run / "metrics.json").read_bytes()
    for content, found in [(text[: len(text) // 2], "is not valid JSON (line"), (b"\xff" + text, "is not UTF-8")]:
        (run / "metrics.json").write_bytes(content)
        line = one_error_line(["report", str(run), "--out", str(tmp_path / "report")])
        assert found in line and str(run / "metrics.json") in line and "cut short" in line, line


@FUZZ
@given(data=st.data())
def test_random_edits_of_metrics_json_report_or_fail_in_one_line(finished_run, tmp_path, data):
    text = (finished_run / "metrics.json").read_text()
    metrics = json.loads(text)
    run = tmp_path / "run"
    if not run.exists():
        shutil.copytree(finished_run, run)
    if data.draw(st.booleans()):
        content = text[: data.draw(st.integers(0, len(text)))]
    else:
        keys = [k for k in metrics if k != "history"] + [f"test.{k}" for k in metrics["test"]]
        key = data.draw(st.sampled_from(keys))
        value = data.draw(DOCUMENTS.map(json.dumps) | st.just("<delete>"))
        content = _edited(metrics, f"{key}={value}")
    (run / "metrics.json").write_text(content)
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "report")])
    if result.exit_code != 0:
        checked(result)


def test_a_json_reader_bounds_nesting_and_digits(tmp_path):
    for content, found in [
        ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),
        ('{"a": ' + "9" * 5000 + "}", "digits"),
    ]:
        path = tmp_path / "x.json"
        path.write_text(content)
        with pytest.raises(ConfigError, match=found):
            read_json_mapping(path)


# --- raw files from the simulator --------------------------------------------------------------------------------

_DATA = np.array([[0.0, 1.5, -0.5], [1e-3, 1.25, -0.25], [2e-3, 1.0, 0.125]])
RAW_FILES = [
    _binary(["time", "v(n1)", "v(n2)"], _DATA),
    _header(["time", "v(n1)"], 2) + b"Values:\n 0\t0.0\n\t1.5\n\n 1\t1e-3\n\t1.25\n\n",
    _header(["f", "v(a)"], 1, flags="complex") + b"Values:\n 0\t1.0,0.0\n\t0.5,-0.5\n\n",
    _binary(["time", "v(a)"], _DATA[:, :2], plotname="Operating Point")
    + _binary(["frequency", "v(a)"], _DATA[:2, :2] + 1j, flags="complex", plotname="AC Analysis"),
]
COUNTS = [b"0", b"-1", b"nan", b"1e3", b"", b"99999999999999999999", b"3 4", b"\xff"]


@st.composite
def mutated_raw(draw: st.DrawFn) -> bytes:
    """A valid raw file with up to four byte-level or header-count mutations."""
    blob = bytearray(draw(st.sampled_from(RAW_FILES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "count", "variables"]))
        at = draw(st.integers(0, max(len(blob) - 1, 0)))
        if kind == "flip" and blob:
            blob[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            blob = blob[:at]
        elif kind == "insert":
            blob[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\n", b"\t9 v(x) voltage\n"]))
        else:
            key = draw(st.sampled_from([b"No. Points: ", b"No. Variables: "]))
            start = blob.find(key)
            if start >= 0:
                end = blob.find(b"\n", start)
                blob[start + len(key) : end if end >= 0 else len(blob)] = draw(st.sampled_from(COUNTS))
    return bytes(blob)


@FUZZ
@given(blob=mutated_raw())
def test_mutated_raw_files_read_or_raise_one_data_error(tmp_path, blob):
    path = tmp_path / "out.raw"
    path.write_bytes(blob)
    try:
        plots = read_raw(path)
    except DataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc) and len(str(exc)) < 400, str(exc)[:300]
    else:
        for plot in plots:
            assert plot.data.shape[1] == len(plot.variables) >= 1


@pytest.mark.parametrize(
    ("blob", "found"),
    [
        (_header(["time", "v(a)"], -1) + b"Binary:\n", "announces 2 variables and -1 points"),
        (_header([], 1) + b"Binary:\n", "announces 0 variables"),
        (_header(["time", "v(a)"], 1) + b"Values:\n 0\t0.0\n\tabc\n", "is not a number"),
        (_header(["f", "v(a)"], 1, flags="complex") + b"Values:\n 0\t1.0\n\t0.5\n", "is not a number"),
        (_header(["time", "v(a)"], 10**15) + b"Binary:\n" + b"\0" * 16, "is truncated"),
    ],
)
def test_malformed_raw_files_name_the_file(tmp_path, blob, found):
    path = tmp_path / "bad.raw"
    path.write_bytes(blob)
    with pytest.raises(DataError, match=found) as caught:
        read_raw(path)
    assert str(path) in str(caught.value)


def test_every_document_read_in_src_goes_through_the_bounded_readers():
    """No module parses a YAML or JSON file on its own: the bounded loader and reader are the only ones."""
    src = Path(__file__).resolve().parents[2] / "src" / "kirchhoffnet"
    parsers = ("yaml.safe_load(", "yaml.load(", "yaml.full_load(", "yaml.unsafe_load(", "json.load(")
    offenders = [
        f"{path.relative_to(src)}:{k + 1}: {line.strip()}"
        for path in src.rglob("*.py")
        for k, line in enumerate(path.read_text().splitlines())
        if any(call in line for call in parsers) or ("json.loads(" in line and "read_" in line)
    ]
    assert not offenders, offenders


def test_a_non_utf8_model_card_is_one_line(tmp_path):
    card = tmp_path / "card.lib"
    card.write_bytes(b".model kn_nmos nmos (level=1 vto=0.5 kp=1e-4) * \xb5A\n")
    line = one_error_line(["spice", "iv", str(tmp_path / "model"), "--model-card", str(card)])
    assert "card.lib is not UTF-8 text (byte 48 is 0xb5)" in line, line
