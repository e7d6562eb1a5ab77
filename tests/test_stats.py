"""Harness statistics against hand-computed values."""

import math

import pytest

from edgedeploy.runtimes.stats import nearest_rank, summarize


def test_small_sample_by_hand():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["p50"] == 2.5
    assert s["mean"] == 2.5
    assert s["min"] == 1.0 and s["max"] == 4.0
    # sample std: sqrt(((1.5^2)*2 + (0.5^2)*2) / 3) = sqrt(5/3)
    assert s["std"] == pytest.approx(math.sqrt(5 / 3))
    assert s["cv"] == pytest.approx(math.sqrt(5 / 3) / 2.5)
    assert s["p90"] is None and s["p99"] is None
    assert any("p90 needs >= 64" in n for n in s["not_available"])


def test_nearest_rank_percentiles():
    values = list(range(1, 101))  # 1..100
    assert nearest_rank(values, 90) == 90
    assert nearest_rank(values, 99) == 99
    assert nearest_rank(values, 50) == 50
    assert nearest_rank([5.0], 99) == 5.0


def test_sample_count_rules():
    assert summarize([1.0] * 63)["p90"] is None
    s64 = summarize([float(i) for i in range(1, 65)])
    assert s64["p90"] == 58.0  # ceil(0.9 * 64) = 58th smallest
    assert s64["p99"] is None
    s662 = summarize([float(i) for i in range(1, 663)])
    assert s662["p99"] == 656.0  # ceil(0.99 * 662) = 656
    assert "not_available" not in s662


def test_stability_threshold():
    from edgedeploy.runtimes.stats import is_stable

    assert is_stable(summarize([10.0, 10.5, 9.5, 10.0]))
    assert not is_stable(summarize([10.0, 15.0, 5.0, 10.0]))


def test_empty_is_an_error():
    with pytest.raises(ValueError):
        summarize([])
