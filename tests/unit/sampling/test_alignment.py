"""What the model's aligner does when Flink's watermark cannot be trusted alone.

In the Flink job, events and the sampler's batches reach the model on two paths.
After the source was idle (``sampling.idle_timeout``) Flink leaves an idle path out
of the model's watermark, so the watermark can pass a window whose batch is still
on its way, or events still on theirs. ``tests/e2e/test_sampling_job.py`` shows it on
a live job; these tests pin the rules that make the order right anyway.
"""

from __future__ import annotations

import pickle

from stratiflow.config import load_config
from stratiflow.records import Event
from stratiflow.sampling import TrainingBatch
from stratiflow.sampling.alignment import END_OF_TIME, EventTimeAligner


def aligner() -> EventTimeAligner:
    """Windows of 1000 ms, 50 ms out of order: an event at ts waits for ts - 51."""
    return EventTimeAligner.of(
        load_config({"sampling": {"window": "1s", "max_out_of_orderness": "50ms"}}).sampling
    )


def batch(start: int) -> TrainingBatch:
    return TrainingBatch("default", start, start + 1000, start + 999, [])


def labelled(i: int, ts: int) -> Event:
    return Event(f"l{i}", ts, {"x": 1.0}, label=True)


def ids(items: list[object]) -> list[str]:
    return [getattr(item, "id", f"batch@{getattr(item, 'start', '?')}") for item in items]


def test_an_event_waits_for_the_batch_of_a_window_it_saw_examples_of() -> None:
    a = aligner()
    a.add_event(labelled(0, 900), watermark=0)
    a.add_event(Event("after", 1100, {}), watermark=0)
    # The watermark passed window [0, 1000) but its batch has not come: hold.
    assert ids(list(a.release(watermark=2000))) == ["l0"]
    a.add_batch(batch(0))
    assert ids(list(a.release(watermark=2000))) == ["batch@0", "after"]


def test_a_late_notice_resolves_a_window_that_sends_no_batch() -> None:
    a = aligner()
    a.add_event(labelled(0, 900), watermark=0)
    a.add_event(Event("after", 1100, {}), watermark=0)
    assert ids(list(a.release(watermark=2000))) == ["l0"]
    a.resolve(0)  # stage 1 found the example late
    assert ids(list(a.release(watermark=2000))) == ["after"]


def test_more_examples_after_the_batch_do_not_wait_for_it_again() -> None:
    a = aligner()
    a.add_event(labelled(0, 900), watermark=0)
    a.add_batch(batch(0))  # the batch path was ahead
    a.add_event(labelled(1, 950), watermark=0)  # another example of the same window
    a.add_event(Event("after", 1100, {}), watermark=0)
    assert ids(list(a.release(watermark=2000))) == ["l0", "l1", "batch@0", "after"]
    assert not a.waits_for_windows()  # the watermark passed the window: forgotten


def test_a_batch_waits_for_an_event_at_or_after_its_fire_time() -> None:
    """The watermark passed the batch's fire time, but events before it may still be on
    their way: the batch is learned once an event whose turn is at or after it came."""
    a = aligner()
    a.add_event(labelled(0, 900), watermark=0)
    a.add_batch(batch(0))
    assert ids(list(a.release(watermark=5000))) == ["l0"]
    a.add_event(Event("before", 1040, {}), watermark=5000)  # turn 989 < fire 999
    assert ids(list(a.release(watermark=5000))) == ["before"]
    a.add_event(Event("after", 1050, {}), watermark=5000)  # turn 999
    assert ids(list(a.release(watermark=5000))) == ["batch@0", "after"]


def test_the_end_of_input_releases_everything_in_turn_order() -> None:
    """Nothing is kept back at the end, not even behind a window whose batch never came."""
    a = aligner()
    a.add_event(labelled(0, 900), watermark=0)
    a.add_event(labelled(1, 1900), watermark=0)
    a.add_batch(batch(1000))
    a.add_event(Event("after", 3000, {}), watermark=0)
    assert ids(list(a.release(watermark=2500))) == ["l0"]  # window 0 is unresolved
    assert ids(list(a.release(watermark=END_OF_TIME))) == ["l1", "batch@1000", "after"]


def test_window_bookkeeping_survives_a_pickle_round_trip() -> None:
    a = aligner()
    a.add_event(labelled(0, 900), watermark=0)
    assert ids(list(a.release(watermark=100))) == []
    a = pickle.loads(pickle.dumps(a))
    a.add_event(Event("after", 1100, {}), watermark=2000)
    assert ids(list(a.release(watermark=2000))) == ["l0"]
    a.add_batch(batch(0))
    assert ids(list(a.release(watermark=2000))) == ["batch@0", "after"]


def test_without_a_window_size_the_watermark_alone_decides() -> None:
    """State pickled before the window bookkeeping, and the doctest's aligner."""
    a = EventTimeAligner(max_out_of_orderness=50)
    a.add_event(labelled(0, 900))
    a.add_event(Event("after", 1100, {}))
    assert ids(list(a.release(watermark=2000))) == ["l0", "after"]
    assert not a.waits_for_windows()
