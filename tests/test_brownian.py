"""SteppedBrownian: exact increments for forward fixed-step queries, a clear error for anything else."""

import pytest
import torch

from kirchhoffnet._brownian import SteppedBrownian
from kirchhoffnet.errors import SolverError


def test_increments_have_variance_of_the_step():
    bm = SteppedBrownian((20_000, 2), torch.float64, seed=3)
    first = bm(0.0, 0.25)
    second = bm(0.25, 0.5)
    # 40 000 draws: the sample variance has relative std sqrt(2/40 000) = 0.7 %; 5σ = 3.5 %
    assert torch.var(first).item() == pytest.approx(0.25, rel=0.035)
    # independent steps: their sample correlation has std 1/sqrt(40 000) = 0.005; 6σ = 0.03
    assert abs(torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()) < 0.03


def test_same_seed_same_path():
    a, b = SteppedBrownian((3, 4), torch.float32, seed=7), SteppedBrownian((3, 4), torch.float32, seed=7)
    assert torch.equal(a(0.0, 0.1), b(0.0, 0.1))


@pytest.mark.parametrize("query", [(0.2, 0.3), (0.1, None)])
def test_refuses_queries_that_are_not_the_next_step(query):
    bm = SteppedBrownian((2, 2), torch.float32, seed=0)
    bm(0.0, 0.1)
    with pytest.raises(SolverError, match=r"consecutive step intervals only; got .* next step starts at 0\.1"):
        bm(*query)
