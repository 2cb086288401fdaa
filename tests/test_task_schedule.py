"""The batch schedule of a trial: single-task epochs, examples-proportional multi-task mixing, exact resume."""

from collections import Counter

from ray_xt.loop import TaskSchedule, _epoch_order


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


def _padding(batches, lengths):
    """Share of a padded batch's cells that are padding."""
    cells = sum(len(idx) * max(lengths[i] for i in idx) for idx in batches)
    return 1 - sum(lengths[i] for idx in batches for i in idx) / cells


def test_length_grouped_batches_cover_each_epoch_once_with_far_less_padding():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(8, 128) for _ in range(3000)]
    grouped = TaskSchedule([3000], batch_size=32, seed=1, lengths=[lengths])
    plain = TaskSchedule([3000], batch_size=32, seed=1)
    per_epoch = -(-3000 // 32)
    g = [grouped.batch(step)[1] for step in range(2 * per_epoch)]
    p = [plain.batch(step)[1] for step in range(2 * per_epoch)]
    for epoch in (g[:per_epoch], g[per_epoch:]):  # same batch sizes and steps as plain batches
        assert sorted(i for idx in epoch for i in idx) == list(range(3000))
        assert [len(idx) for idx in epoch] == [32] * (per_epoch - 1) + [3000 - 32 * (per_epoch - 1)]
    assert g[:per_epoch] != g[per_epoch:]  # a new grouping every epoch
    assert _padding(p, lengths) > 0.3 and _padding(g, lengths) < 0.05
    # no long-to-short trend through an epoch: the first and second halves have similar batch lengths
    means = [sum(max(lengths[i] for i in idx) for idx in half) / len(half)
             for half in (g[: per_epoch // 2], g[per_epoch // 2 : per_epoch - 1])]
    assert abs(means[0] - means[1]) < 12


def test_length_grouped_schedule_resumes_exactly_and_groups_multiple_choice_by_longest_choice():
    from ray_xt.loop import row_length

    sizes = [500, 200]
    lengths = [[(i * 37) % 90 + 5 for i in range(500)], [(i * 11) % 40 + 5 for i in range(200)]]
    schedule = TaskSchedule(sizes, 16, 4, lengths)
    picks = [schedule.batch(step) for step in range(120)]
    resumed = TaskSchedule(sizes, 16, 4, lengths)
    assert [resumed.batch(step) for step in range(70, 120)] == picks[70:]
    assert row_length([5, 6, 7]) == 3 and row_length([[1, 2], [1, 2, 3, 4], [1]]) == 4 and row_length([]) == 0
