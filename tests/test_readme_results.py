"""README.md's result tables are generated from results/*.json (experiments/readme_results.py): they must be
what the JSON gives, so a figure cannot be edited in the README alone or drift from the measured record."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import experiment_script, write_finished_run

REPO = Path(__file__).resolve().parents[1]


gen = experiment_script("readme_results")


def test_readme_tables_are_what_results_json_gives():
    assert gen.check() is None


def test_check_command_passes_on_the_committed_readme():
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "readme_results.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_marker_has_its_json_and_every_json_its_marker():
    names = {m["name"] for m in gen.MARKER.finditer((REPO / "README.md").read_text())}
    assert names == set(gen.TABLES) == {p.stem for p in (REPO / "results").glob("*.json")}


def test_a_changed_figure_or_hand_edit_is_caught(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(REPO / "results", results)
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    assert gen.check(readme, results) is None
    record = json.loads((results / "regression.json").read_text())
    record["cells"]["friedman/mlp"]["values"]["mse"][0] *= 2
    (results / "regression.json").write_text(json.dumps(record))
    problem = gen.check(readme, results)
    assert problem is not None and "regression" in problem and "\n" not in problem
    shutil.copy(REPO / "results" / "regression.json", results / "regression.json")
    text = readme.read_text()
    table = gen.MARKER.search(text)
    start, end = table.span("body")
    readme.write_text(text[:start] + text[start:end].replace("0", "9", 1) + text[end:])  # a figure edited by hand
    assert gen.check(readme, results) is not None


def test_unknown_marker_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:nosuch -->\n<!-- /results -->\n")
    with pytest.raises(SystemExit, match="nosuch"):
        gen.check(readme)


@pytest.mark.parametrize(
    ("values", "scale", "shown"),
    [
        ([0.00182, 0.00135, 0.0020], 1, "0.00172 ± 0.00034"),
        ([0.512, 0.472], 1, "0.492 ± 0.028"),
        ([0.8398, 0.8412, 0.8350], 100, "83.9 ± 0.3"),
        ([1.082], 1, "1.08"),
    ],
)
def test_mean_std_shows_three_figures_of_the_mean(values, scale, shown):
    assert gen.mean_std(values, scale) == shown


def test_collect_gathers_every_seed_of_every_cell(tmp_path):
    for data, mses in {"friedman": [0.1, 0.3], "diabetes": [0.5, 0.7]}.items():
        for seed, mse in enumerate(mses):
            write_finished_run(tmp_path / data / "mlp" / f"seed{seed}", seed, mse, primary_metric="mse")
    record = gen.collect("regression", tmp_path, "python x.py")
    assert record["cells"]["friedman/mlp"]["seeds"] == [0, 1]
    assert record["cells"]["diabetes/mlp"]["values"]["mse"] == [0.5, 0.7]
    (tmp_path / "diabetes" / "mlp" / "seed1" / "metrics.json").write_text('{"status": "running"}')
    with pytest.raises(SystemExit, match="did not finish"):
        gen.collect("regression", tmp_path, "python x.py")


def test_collect_takes_the_figure_rescored_under_another_solve(tmp_path):
    for seed, (trained, rescored) in enumerate([(0.90, 0.89), (0.91, 0.905)]):
        run = tmp_path / "fashion_mnist" / f"seed{seed}"
        test = {"accuracy": trained}
        write_finished_run(run, seed, 0.0, primary_metric="accuracy", test=test, num_params=920272, epochs_completed=10)
        (run / "eval").mkdir()
        solver = {"method": "dopri5", "rtol": 1e-3}
        (run / "eval" / "metrics.json").write_text(json.dumps({"accuracy": rescored, "solver": solver}))
    write_finished_run(tmp_path / "fashion_mnist" / "seed2", 2, 0.0, primary_metric="accuracy", test={"accuracy": 0.9})
    (tmp_path / "fashion_mnist" / "seed2" / "eval").mkdir()
    (tmp_path / "fashion_mnist" / "seed2" / "eval" / "metrics.json").write_text('{"accuracy": 0.9}')  # its own solve
    with pytest.raises(SystemExit, match=r"seed2 has figures \['accuracy'\], its cell's other seeds"):
        gen.collect("fashion_mnist_paper", tmp_path, "python x.py")  # a mean over 2 of 3 seeds would pass unseen
    shutil.rmtree(tmp_path / "fashion_mnist" / "seed2")
    record = gen.collect("fashion_mnist_paper", tmp_path, "python x.py")
    values = record["cells"]["fashion_mnist"]["values"]
    assert values == {"accuracy": [0.90, 0.91], "accuracy_dopri5": [0.89, 0.905]}
    table = gen.fashion_mnist_paper(record)
    assert (
        "| 920,272 | 10 | RK4 | 90.5 ± 0.7 % | **89.8 ± 1.1 %** | 89.0 / 90.5 |" in table
        and "n = 2 (seeds 0, 1)" in table
    )


def test_merge_replaces_the_cells_it_has_and_keeps_the_others(tmp_path):
    for cell, mse in {"mlp": 0.1, "circuit": 0.2}.items():
        write_finished_run(tmp_path / "first" / cell / "seed0", 0, mse, primary_metric="mse")
    write_finished_run(tmp_path / "again" / "mlp" / "seed0", 0, 0.05, primary_metric="mse")
    old = gen.collect("regression", tmp_path / "first", "python first.py")
    merged = gen.merge(old, gen.collect("regression", tmp_path / "again", "python both.py"))
    assert {k: c["values"]["mse"] for k, c in merged["cells"].items()} == {"mlp": [0.05], "circuit": [0.2]}
    assert merged["command"] == "python both.py"
    with pytest.raises(SystemExit, match="--merge: the record was measured on 'a 64-core box'"):
        gen.merge({**old, "machine": "a 64-core box"}, merged)


def test_collect_takes_the_pairing_with_the_original_checkpoint(tmp_path):
    for seed, (own, ours, diff) in enumerate([(1.03, 1.025, -0.006), (1.04, 1.035, 0.004)]):
        run = tmp_path / "twomoon" / f"seed{seed}"
        write_finished_run(
            run, seed, 0.0, primary_metric="nll_nats", test={"nll_nats": own}, num_params=1800, steps=6016
        )
        paired = {"ours_nll_nats": ours, "original_nll_nats": 1.031, "difference_nats": diff}
        (run / "paired.json").write_text(json.dumps({**paired, "difference_stderr_nats": 0.007}))
    record = gen.collect("flow2d_seeds", tmp_path, "python x.py")
    assert record["cells"]["twomoon"]["values"]["difference_nats"] == [-0.006, 0.004]
    table = gen.flow2d_seeds(record)
    assert "| twomoon | 1,800 | **1.035 ± 0.007** | 1.0310 | 1.030 ± 0.007 | -0.006 ± 0.007 / +0.004 ± 0.007 |" in table
    assert "n = 2 (seeds 0, 1)" in table


def test_table1_verdict_is_counted_from_the_figures(tmp_path):
    mses = {  # (recipe, data, size): (circuit's seeds, MLP's seeds)
        ("original", "friedman", "small"): ([0.004, 0.006], [0.001, 0.002]),  # the MLP, by more than either std
        ("original", "friedman", "large"): ([0.005, 0.015], [0.011, 0.012]),  # the circuit, within its std
        ("tuned", "friedman", "medium"): ([0.003, 0.004], [0.005, 0.006]),  # the circuit, clearly
    }
    for (recipe, data, size), pair in mses.items():
        for kind, values in zip(("kirchhoffnet", "mlp"), pair, strict=True):
            for seed, mse in enumerate(values):
                run = tmp_path / recipe / data / f"{kind}-{size}" / f"seed{seed}"
                write_finished_run(run, seed, mse, primary_metric="mse")
    table = gen.table1(gen.collect("table1", tmp_path, "python x.py"))
    rows = [line.split(" | ")[:3] for line in table.splitlines() if line.startswith("| original") or "| tuned" in line]
    assert rows == [
        ["| original", "friedman", "small"],
        ["| original", "friedman", "large"],
        ["| tuned", "friedman", "medium"],
    ]
    assert "| **0.00150 ± 0.00071** (10 p.) |" in table  # the lower mean in bold
    assert (
        "KirchhoffNet has the lower mean in 2 of 3 cells (1 by more than either's standard deviation). "
        "MLP has the lower mean in 1 of 3 cells: original friedman small (1 by more than either's standard deviation)."
    ) in table
    shutil.rmtree(tmp_path / "original")
    assert "KirchhoffNet has the lower mean in 1 of 1 cells (1 by more" in gen.table1(
        gen.collect("table1", tmp_path, "python x.py")
    )
    assert "MLP has the lower mean in none of the 1 cells." in gen.table1(gen.collect("table1", tmp_path, "python x"))
    shutil.rmtree(tmp_path / "tuned" / "friedman" / "mlp-medium")
    with pytest.raises(SystemExit, match="no cell 'tuned/friedman/mlp-medium'"):
        gen.table1(gen.collect("table1", tmp_path, "python x.py"))
