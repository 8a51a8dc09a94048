"""The memory pre-flight: edge counts without building, and absurd configs refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kirchhoffnet.cli.main import app
from kirchhoffnet.config import check_memory, load_config
from kirchhoffnet.config.budget import estimate
from kirchhoffnet.config.circuit import Chain, FullyConnect, MixConnect, NeighborConnect, RandomGraph
from kirchhoffnet.errors import ConfigError
from kirchhoffnet.runtime import LIMIT_ENV, memory_limit
from kirchhoffnet.training import sample_run, train

from ..training.helpers import tiny_flow

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for p in (REPO / "configs").glob("*/*.yaml") if p.parent.name != "diffusion")


def _topologies():
    for nodes in (2, 3, 5):
        for repeat in ((1, 1), (2, 0), (3, 1)):
            yield FullyConnect(name="fully_connect", num_nodes=nodes, repeat=repeat)
            yield FullyConnect(name="fully_connect", num_nodes=nodes + 1, repeat=repeat, include_ground=False)
        yield Chain(name="chain", num_nodes=nodes, repeat=2)
        yield Chain(name="chain", num_nodes=nodes + 1, include_ground=False)
    for channels in (1, 2):
        for kernel in (1, 2, 3):
            image = {"channels": channels, "height": 5, "width": 4, "kernel_size": kernel}
            yield NeighborConnect(name="neighbor_connect", **image, repeat=2)
            for repeat in ((1, 0), (1, 1), (0, 2)):
                yield MixConnect(name="mix_connect", **image, hidden_nodes=3, repeat=repeat, kernel_repeat=2)
    yield RandomGraph(name="random_graph", num_nodes=6, num_edges=7)


@pytest.mark.parametrize("topology", list(_topologies()), ids=lambda t: f"{t.name}")
def test_edge_count_equals_the_built_topology(topology):
    assert topology.edge_count == topology.build().shape[1]


@pytest.mark.parametrize("kernel", [1, 2, 3, 6])
def test_with_padding_the_edge_count_is_still_exact(kernel):
    """Padded windows lose the pairs of their outside pixels; the count (an upper bound before) says so."""
    topology = NeighborConnect(name="neighbor_connect", channels=2, height=5, width=4, kernel_size=kernel, padding=True)
    assert topology.edge_count == topology.build().shape[1]


MNIST = REPO / "configs/classify/mnist.yaml"
ABSURD = "circuit.topology.hidden_nodes=1000000000"  # valid key by key: 10^9 hidden nodes, 1.6·10^12 edges


def test_an_absurd_circuit_is_refused_before_anything_is_built_or_written(tmp_path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    config = load_config(MNIST, [ABSURD])
    with pytest.raises(
        ConfigError,
        match=r"^circuit\.topology\[0\]: the circuit needs at least \d\.\d+e\+\d\d GB but 8 GB are available "
        r"\(1,570,000,[\d,]+ edges in the largest of 2 slices; parameters .* GB, solver states .* GB, \(batch, edges\) "
        r"buffers .* GB\); use a smaller topology or train\.batch_size, or set KIRCHHOFFNET_MEMORY_GB if the estimate",
    ):
        train(config, tmp_path / "run")  # the MNIST files are not needed: the check comes first
    assert not (tmp_path / "run").exists()


def test_a_huge_batch_on_a_large_circuit_names_the_batch_size(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    config = load_config(MNIST, ["train.batch_size=100000"])
    with pytest.raises(
        ConfigError,
        match=r"^circuit\.topology\[0\]: the circuit needs at least 276 GB .*; use a smaller topology or "
        r"train\.batch_size,",
    ):
        check_memory(config)
    check_memory(config, training=False)  # evaluation chunks the edges: the training batch does not matter


def test_a_huge_evaluation_batch_names_it(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    with pytest.raises(
        ConfigError,
        match=r"^train\.eval_batch_size: the circuit needs at least .*; lower train\.eval_batch_size, or set",
    ):
        check_memory(tiny_flow("train.eval_batch_size=10000000000"), training=False)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_config_fits_in_8_gb(path, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "8")
    config = load_config(path)
    check_memory(config)
    assert estimate(config)[0] < 8e9


def test_the_estimate_bounds_a_tiny_runs_parameters_from_below():
    config = tiny_flow()
    parameters = sum(t.edge_count for t in config.circuit.slice_topologies()) * 4 * 4  # 1 parameter: 4 copies
    assert estimate(config)[0] >= parameters
    assert estimate(config, training=False)[0] < estimate(config)[0]


@pytest.mark.parametrize("text", ["0", "-1", "lots", "nan", "inf"])
def test_a_bad_limit_in_the_environment_is_one_line(text, monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, text)
    with pytest.raises(ConfigError, match=rf"^KIRCHHOFFNET_MEMORY_GB must be a positive number of GB, got '{text}'$"):
        memory_limit()


def test_the_default_limit_is_the_available_memory(monkeypatch):
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    if not Path("/proc/meminfo").is_file():
        assert memory_limit() is None
        return
    available = next(line for line in Path("/proc/meminfo").read_text().splitlines() if "MemAvailable" in line)
    assert memory_limit() == pytest.approx(float(available.split()[1]) * 1024, rel=0.5)  # it moves meanwhile


def test_the_cli_refuses_an_absurd_config_with_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(
        app, ["train", str(MNIST), "--out", str(tmp_path / "run"), "--set", ABSURD], env={LIMIT_ENV: "8"}
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: circuit.topology[0]: the circuit needs at least")


def test_opening_a_run_checks_the_inference_estimate(tmp_path, monkeypatch):
    run = train(tiny_flow("train.epochs=1", "train.steps_per_epoch=1"), tmp_path / "run", progress=False).run_dir
    monkeypatch.setenv(LIMIT_ENV, "1e-6")  # 1 kB: less than any circuit
    with pytest.raises(ConfigError, match=r"^train\.eval_batch_size: the circuit needs at least .* but 1e-06 GB"):
        sample_run(run, 10)
