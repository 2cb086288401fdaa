"""One driver per study: the lease on the study's storage, on a local folder and on a URI, with a clock the test
moves (its heartbeat, expiry and takeover), and two drivers racing for it."""

import threading

import pytest

from ray_xt.study.lease import StudyHeld, StudyLease


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def lease(where: str, clock: Clock, **given) -> StudyLease:
    """A one-minute lease on study "s", without the settling pause, on the test's clock."""
    return StudyLease(where, "s", lease_seconds=60, settle_seconds=0, clock=clock, **given)


@pytest.fixture(params=["folder", "uri"])
def where(request, tmp_path):
    return str(tmp_path / "results" / "s") if request.param == "folder" else f"file://{tmp_path}/results/s"


def test_a_second_driver_is_refused_with_who_holds_it(where):
    clock = Clock()
    first = lease(where, clock, job_id="raysubmit_1")
    first.acquire()
    with pytest.raises(StudyHeld, match=r"study s is being run by another driver \(host .+, pid \d+, Ray job "
                                        r"raysubmit_1, since .+UTC.+--takeover"):
        lease(where, clock).acquire()
    first.release()
    second = lease(where, clock)
    second.acquire()  # given back: free
    second.release()
    assert second.holder() is None


def test_a_dead_holders_lease_expires_and_takeover_does_not_wait(where):
    clock = Clock()
    dead = lease(where, clock)
    dead.acquire()
    dead._stop.set()  # killed: no more heartbeats, nothing given back
    clock.now += 30
    with pytest.raises(StudyHeld):
        lease(where, clock).acquire()
    taker = lease(where, clock)
    taker.acquire(takeover=True)
    assert not dead.renew() and dead.lost.is_set()  # the old holder, were it alive, learns it lost the lease
    taker._stop.set()  # the taker dies too: after the lease's length, anyone may take it without --takeover
    clock.now += 61
    late = lease(where, clock)
    late.acquire()
    late.release()
    assert late.holder() is None


def test_renewal_keeps_a_live_holder(where):
    clock = Clock()
    holder = lease(where, clock)
    holder.acquire()
    for _ in range(5):
        clock.now += 40
        assert holder.renew()
    with pytest.raises(StudyHeld):
        lease(where, clock).acquire()
    holder.release()


def test_two_drivers_started_together_one_wins(tmp_path):
    where = str(tmp_path / "results" / "s")
    outcomes, barrier = [], threading.Barrier(4)

    def race():
        lease = StudyLease(where, "s", lease_seconds=60, settle_seconds=0.3)
        barrier.wait()
        try:
            lease.acquire()
            outcomes.append(("held", lease))
        except StudyHeld:
            outcomes.append(("refused", lease))

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(kind for kind, _ in outcomes) == ["held", "refused", "refused", "refused"]
    for kind, lease in outcomes:
        if kind == "held":
            lease.release()
