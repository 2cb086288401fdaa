"""The batch schedule of a trial: single-task epochs, examples-proportional multi-task mixing, exact resume."""

from collections import Counter

from ray_xt.trial import TaskSchedule, _epoch_order


def test_single_task_walks_shuffled_epochs():
    schedule = TaskSchedule([10], batch_size=4, seed=3)
    batches = [schedule.batch(step) for step in range(6)]  # 3 batches per epoch
    assert all(k == 0 for k, _ in batches)
    first_epoch = [i for _, idx in batches[:3] for i in idx]
    assert sorted(first_epoch) == list(range(10)) and first_epoch == _epoch_order(10, 3, 0)
    assert [i for _, idx in batches[3:] for i in idx] == _epoch_order(10, 3, 1)


def test_multi_task_mixing_is_size_proportional_and_resumable():
    sizes = [3000, 1000]
    schedule = TaskSchedule(sizes, batch_size=10, seed=0)
    picks = [schedule.batch(step) for step in range(400)]
    share = Counter(k for k, _ in picks)[0] / 400
    assert 0.68 < share < 0.82  # 3:1 sizes -> about 75% of the steps
    # every batch of a task comes from that task's own examples, without repeats inside its epoch
    seen = [i for k, idx in picks if k == 1 for i in idx][:1000]
    assert len(set(seen)) == len(seen) and max(seen) < 1000
    # a resumed trial (fresh schedule, starting at step 250) continues with exactly the same batches
    resumed = TaskSchedule(sizes, batch_size=10, seed=0)
    assert [resumed.batch(step) for step in range(250, 400)] == picks[250:]
