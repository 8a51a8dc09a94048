"""The cross-run table: several runs of one config (seeds) are summarised, never collapsed into one of them."""

from __future__ import annotations

from kirchhoffnet.training.report import markdown


def _row(name: str, value: float | None, metric: str = "mse", data: str = "friedman") -> dict:
    return {
        "name": name,
        "task": "regression",
        "data": data,
        "metric": metric,
        "value": value,
        "stderr": None,
        "num_params": 168,
        "epochs": 40,
        "train_wall_time_s": 1.0,
        "train_cpu_time_s": 1.0,
    }


def test_seeds_of_one_config_are_shown_as_mean_std_and_n():
    rows = [_row("kn", 1.0), _row("kn", 2.0), _row("kn", 6.0), _row("mlp", 0.5)]
    text = markdown(rows)
    assert "| friedman | 3 ± 2.6 (n = 3, 168 p.) | 0.5 (168 p.) |" in text  # mean 3, sample std √7
    assert text.count("| kn | regression |") == 3  # the run table still lists every run


def test_a_failed_seed_is_counted_and_accuracy_stays_in_percent():
    rows = [
        _row("a", 0.9, "accuracy"),
        _row("a", None, "accuracy"),
        _row("a", 0.8, "accuracy"),
        _row("b", 0.7, "accuracy"),
    ]
    text = markdown(rows)
    assert "| friedman | 85.00 % ± 7.07 % (n = 2, 1 n/a, 168 p.) | 70.00 % (168 p.) |" in text
    assert "n/a (n = 2, 168 p.)" in markdown([_row("a", None), _row("a", None), _row("b", 1.0)])
