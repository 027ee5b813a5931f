"""The scale run's waiting: screening done, then a bounded watch of the counter-example
backlog (a fake client's stats; the run itself is ``deploy/bench-cluster.sh``)."""
import pytest

from clients.scale_run import counterexample_backlog, wait_screened


class FakeStats:
    def __init__(self, pending, computing):
        self.pending, self.computing = list(pending), list(computing)

    def stats(self, pid):
        pending = self.pending.pop(0) if len(self.pending) > 1 else self.pending[0]
        computing = self.computing.pop(0) if len(self.computing) > 1 else self.computing[0]
        return {"examples": {"pending": pending}, "queries": {"computing": computing}}


def test_screened_means_nothing_pending_whatever_still_computes():
    client = FakeStats(pending=[50, 10, 0], computing=[900])
    assert wait_screened(client, 1, timeout=5, poll=0)["queries"]["computing"] == 900
    with pytest.raises(TimeoutError):
        wait_screened(FakeStats(pending=[5], computing=[0]), 1, timeout=0.05, poll=0.01)


def test_backlog_watch_stops_when_empty_or_after_its_seconds():
    done = counterexample_backlog(FakeStats([0], [30, 20, 0]), 1, seconds=5, poll=0)
    assert (done["waiting_at_start"], done["waiting_at_end"]) == (30, 0)
    assert done["per_second"] > 0
    stuck = counterexample_backlog(FakeStats([0], [30]), 1, seconds=0.05, poll=0.01)
    assert stuck["waiting_at_end"] == 30 and stuck["per_second"] == 0
    assert 0.05 <= stuck["seconds"] < 2
