"""The data owner's overview: the stored matrix, cells, batch actions and the progress plot."""
import shutil

import numpy as np
import pytest

from cincer_service.service import BadInput, Conflict, NotFound, examples, overview, reports
from cincer_service.service.context import TRAINING
from cincer_service.service.store import Project
from tests.support.service import annotator, answer_all, items, make_context, new_project


def test_mismatch_scores_and_histogram():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    scores = overview.mismatch_scores(probs, [0, 0, 1])
    np.testing.assert_allclose(scores, [0.5, (0.8 + 1 - 0.2) / 2, 0.5])
    assert overview.score_histogram(scores) == [2, 0, 0, 0, 0, 0, 1, 0, 0, 0]


def test_layout_is_a_grid_for_few_and_tsne_for_more():
    grid = overview.layout_2d(np.eye(4))
    assert grid.shape == (4, 2) and len({tuple(p) for p in grid}) == 4
    rng = np.random.default_rng(0)
    Y = overview.layout_2d(rng.normal(size=(20, 5)))
    assert Y.shape == (20, 2) and Y.min() >= 0 and Y.max() <= 1


def test_cells_are_sorted_by_count_with_duplicates_marked():
    ids = np.arange(10, 18)
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 0])
    predictions = np.array([0, 0, 0, 0, 0, 1, 0, 1])
    scores = np.array([0.5] * 5 + [0.5, 0.9, 0.7])
    X = np.arange(16, dtype=float).reshape(8, 2)
    cells = overview.build_cells(ids, X, labels, predictions, scores,
                                 [{"label": 1, "prediction": 0}])
    assert [(c["label"], c["prediction"], c["count"]) for c in cells] == \
        [(0, 0, 5), (0, 1, 1), (1, 0, 1), (1, 1, 1)]
    assert cells[2]["duplicates"] == 1 and cells[0]["duplicates"] == 0
    assert cells[2]["examples"] == [{"id": 16, "score": 0.9, "xy": [0.5, 0.5]}]
    assert sum(cells[0]["histogram"]) == 5


@pytest.fixture(scope="module")
def template(tmp_path_factory, stream):
    """The data directory of a breast project with a model, a screened stream and a few
    answered queries, and its id: built once, copied for each test (each may change it)."""
    where = tmp_path_factory.mktemp("overview-project")
    built = make_context(where)
    pid = new_project(built)
    examples.ingest(built, pid, items(stream, 0, 200))
    data, _, _ = stream
    answer_all(built, pid, data.y_train, annotator(built, pid))
    built.store.engine.dispose()
    return where, pid


@pytest.fixture
def ctx(tmp_path, template):
    """A context on a copy of the template's data directory; jobs run inline."""
    copy = tmp_path / "data"
    shutil.copytree(template[0], copy)
    return make_context(copy)


@pytest.fixture
def project(template):
    return template[1]


def test_overview_is_computed_by_the_job_and_served(ctx, project):
    assert overview.get_overview(ctx, project)["status"] == "missing"
    view = overview.request_overview(ctx, project)          # inline: computed at once
    assert view["status"] == "done" and view["stale"] is False
    assert view["n_examples"] == 200 and view["model_version"] >= 1
    counts = [c["count"] for c in view["cells"]]
    assert counts == sorted(counts, reverse=True) and sum(counts) == 200
    assert all(len(c["histogram"]) == overview.HISTOGRAM_BINS for c in view["cells"])
    off = next(c for c in view["cells"] if c["label"] != c["prediction"])
    cell = overview.get_cell(ctx, project, off["label"], off["prediction"])
    scores = [item["score"] for item in cell["items"]]
    assert len(scores) == off["count"] and scores == sorted(scores, reverse=True)
    assert all(s > 0.5 for s in scores) and all(item["xy"] for item in cell["items"])
    assert len(cell["items"][0]["x"]) == 30
    low = overview.get_cell(ctx, project, off["label"], off["prediction"], min_score=0.9)
    assert all(item["score"] >= 0.9 for item in low["items"])
    with pytest.raises(NotFound):
        overview.get_cell(ctx, project, 5, 5)


def test_overview_needs_a_model(ctx):
    pid = new_project(ctx)
    with pytest.raises(Conflict):
        overview.request_overview(ctx, pid)


def test_batch_relabel_confirm_and_remove(ctx, project):
    overview.request_overview(ctx, project)
    listing = examples.list_examples(ctx, project, status="accepted", limit=6)["items"]
    ids = [e["id"] for e in listing]
    with ctx.store.session() as s:
        before = s.get(Project, project).generation

    result = overview.apply_action(ctx, project, "relabel", ids[:3], "owner", label=1,
                                   reason="class confusion")
    changed = set(result["example_ids"])
    assert changed == {e["id"] for e in listing[:3] if e["label"] != 1}
    for e in listing[:3]:
        got = examples.get_example(ctx, project, e["id"])
        assert got["label"] == 1
        events = [h for h in got["history"] if h["why"] == "overview_relabel"]
        assert [(h["old_label"], h["new_label"], h["actor"]) for h in events] == \
            ([(e["label"], 1, "owner")] if e["id"] in changed else [])
    with ctx.store.session() as s:
        assert s.get(Project, project).generation == before + (1 if changed else 0)
    assert overview.get_overview(ctx, project)["stale"] is bool(changed)

    overview.confirm_examples(ctx, project, ids[3:4], "owner")
    confirmed = examples.get_example(ctx, project, ids[3])
    assert confirmed["confirmed"] is True
    assert confirmed["history"][-1]["why"] == "overview_confirm"
    assert confirmed["history"][-1]["old_label"] == confirmed["history"][-1]["new_label"]

    overview.remove_examples(ctx, project, ids[4:6], "owner")
    for eid in ids[4:6]:
        removed = examples.get_example(ctx, project, eid)
        assert removed["status"] == overview.REMOVED not in TRAINING
        assert removed["history"][-1]["why"] == "overview_remove"
    # Removing again changes nothing; removed examples leave the next overview.
    assert overview.remove_examples(ctx, project, ids[4:6], "owner")["changed"] == 0
    assert overview.request_overview(ctx, project)["n_examples"] == 198


def test_batch_actions_refuse_bad_input(ctx, project):
    with pytest.raises(BadInput):
        overview.apply_action(ctx, project, "relabel", [1], "owner")          # no label
    with pytest.raises(BadInput):
        overview.apply_action(ctx, project, "relabel", [1], "owner", label=7)
    with pytest.raises(BadInput):
        overview.apply_action(ctx, project, "confirm", [], "owner")
    with pytest.raises(BadInput):
        overview.apply_action(ctx, project, "remove", [999999], "owner")
    with pytest.raises(BadInput):
        overview.apply_action(ctx, project, "explode", [1], "owner")


def test_batch_relabels_ask_for_a_retrain(ctx, project):
    listing = examples.list_examples(ctx, project, status="accepted", limit=10)["items"]
    flipped = [e["id"] for e in listing if e["label"] == 0][:3]
    version = reports.stats(ctx, project)["model_version"]
    overview.relabel_examples(ctx, project, flipped, 1, "owner")     # every_n_answers = 3
    assert reports.stats(ctx, project)["model_version"] == version + 1   # inline retrain


def test_cleaning_progress_and_plot(ctx, project):
    rows = overview.cleaning_progress(ctx, project)
    assert rows and rows[0]["version"] in (0, 1)
    assert sum(r["answers"] for r in rows) == reports.stats(ctx, project)["queries"]["answered"]
    assert sum(r["relabels"] for r in rows) == reports.stats(ctx, project)["relabelled"]
    png = overview.progress_plot(ctx, project)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
