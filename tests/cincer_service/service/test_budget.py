"""budget: a threshold τ that follows a target question rate."""
import numpy as np
import pytest

from cincer_service.service import budget as bg
from cincer_service.service import examples, projects, queries, reports
from cincer_service.spec import BUDGET_MIN_MARGINS, BUDGET_WINDOW
from tests.support.service import BOOTSTRAP, items, new_project


def _margin_stream(n, seed, disagree=0.3):
    """Margins of a stream whose model improves: a share ``disagree`` of the examples
    disagree with the model, their margins drift from low (an unsure early model) to high."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    disagrees = rng.random(n) < disagree
    margins = np.where(disagrees, rng.beta(1.0 + 4.0 * t, 3.0), 0.0)
    return margins, disagrees


def _screen(margins, disagrees, budget, batch, fixed=0.2):
    """Replay the stream in batches as ``screen_pending`` does; the suspicious flags."""
    window, flags, modes = [], [], []
    for start in range(0, len(margins), batch):
        m, d = margins[start:start + batch], disagrees[start:start + batch]
        tau, mode, window = bg.screen_threshold(fixed, budget, window, m)
        flags.append(d & (m >= tau))
        modes.append(mode)
        assert len(window) <= BUDGET_WINDOW
    return np.concatenate(flags), modes


@pytest.mark.parametrize("budget,batch,seed", [(5, 50, 0), (10, 50, 1), (20, 7, 2),
                                               (10, 512, 3), (2, 25, 4)])
def test_query_rate_follows_the_budget(budget, batch, seed):
    margins, disagrees = _margin_stream(20_000, seed)
    flags, modes = _screen(margins, disagrees, budget, batch)
    rate = 100.0 * flags.mean()
    assert abs(rate - budget) <= 0.2 * budget, rate
    # also over every stretch of 2,000 examples (after the warm-up), despite the drift
    for start in range(2_000, 20_000, 2_000):
        part = 100.0 * flags[start:start + 2_000].mean()
        assert abs(part - budget) <= 0.2 * budget, (start, part)
    assert modes[-1] == "budget"


def test_fixed_threshold_ignores_the_window():
    margins, disagrees = _margin_stream(5_000, 0)
    flags, modes = _screen(margins, disagrees, None, 50)
    assert set(modes) == {"fixed"}
    assert np.array_equal(flags, disagrees & (margins >= 0.2))


def test_warm_up_and_ceiling():
    tau, mode, window = bg.screen_threshold(0.2, 10, [], [0.5] * (BUDGET_MIN_MARGINS - 1))
    assert (tau, mode, len(window)) == (0.2, "budget_warmup", BUDGET_MIN_MARGINS - 1)
    # fewer disagreements than the budget allows: τ falls to 0 and every one is asked
    margins = np.r_[np.zeros(970), np.full(30, 0.4)]
    tau, mode, _ = bg.screen_threshold(0.2, 10, [], margins)
    assert mode == "budget" and tau == 0.0


def test_margins_match_the_cleaning_margin():
    from cincer_service.cleaning import margin
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=50)
    labels = rng.integers(0, 4, size=50)
    expected = [margin(p, y)[1] for p, y in zip(probs, labels)]
    assert np.allclose(bg.margins(probs, labels), expected)


def test_project_with_a_budget_reports_its_threshold(ctx, stream):
    n_stream = 200
    pid = new_project(ctx, query_budget=5.0, retrain={"mode": "warm", "every_n_answers": 1000})
    view = projects.get_project(ctx, pid)
    assert view["threshold_mode"] == "budget" and view["query_budget"] == 5.0
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + n_stream))
    stats = reports.stats(ctx, pid)
    threshold = stats["threshold"]
    assert threshold["mode"] == "budget" and threshold["budget"] == 5.0
    assert threshold["window"] == n_stream and threshold["fixed"] == 0.2
    assert 0.0 <= threshold["effective"] <= 1.0
    stream_queries = [q for q in queries.list_queries(ctx, pid, limit=500)["items"]
                      if q["origin"] == "stream"]
    # one screening batch: its own margins set τ, so about 5 per 100 are asked
    assert 0.8 * 10 <= len(stream_queries) <= 1.2 * 10 + 1
    assert all(q["margin"] >= threshold["effective"] - 1e-9 for q in stream_queries)


def test_fixed_threshold_is_the_default(ctx, stream):
    pid = new_project(ctx, retrain={"mode": "warm", "every_n_answers": 1000})
    assert projects.get_project(ctx, pid)["threshold_mode"] == "fixed"
    examples.ingest(ctx, pid, items(stream, 0, BOOTSTRAP + 50))
    threshold = reports.stats(ctx, pid)["threshold"]
    assert threshold == {"mode": "fixed", "fixed": 0.2, "budget": None, "effective": 0.2,
                         "window": 50}
