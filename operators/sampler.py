"""The two-stage stratified window sampler (wraps :mod:`stratiflow.sampling.windows`).

Stage 1, :class:`ClassReservoirs`, is keyed by (model key, class): it fills one
reservoir per event-time window and hands the window on when the watermark
passes it. Stage 2, :class:`AllocateWindow`, is keyed by model key: it waits
until the watermark says every class's window has arrived, then allocates the
training examples and reports what it did.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueState, ValueStateDescriptor

from stratiflow.config import Config, SamplingSettings
from stratiflow.operators.tags import END_OF_INPUT, SAMPLING_STATS
from stratiflow.records import Event, class_key, to_json
from stratiflow.sampling import (
    ClassSummary,
    ClassWindows,
    LateExample,
    WindowAllocator,
    window_start,
)
from stratiflow.sampling.alignment import END_OF_TIME

_SEP = "\x1f"


class EventTime(TimestampAssigner):
    """Flink event time is the event's own ``ts``, never the wall clock."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return int(value.ts)


def event_time_watermarks(settings: SamplingSettings) -> WatermarkStrategy:
    """Bounded out-of-orderness on event ``ts``; idle splits stop holding the watermark."""
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(settings.max_out_of_orderness)
    )
    if settings.idle_timeout > 0:
        strategy = strategy.with_idleness(Duration.of_millis(settings.idle_timeout))
    # Assigner last: PyFlink's with_idleness() returns a strategy without the
    # Python assigner, and every record would keep timestamp Long.MIN_VALUE.
    return strategy.with_timestamp_assigner(EventTime())


def class_stratum(event: Event) -> str:
    """The stage-1 key: model key and class (never key the model itself by class)."""
    assert event.label is not None
    return f"{event.key}{_SEP}{class_key(event.label)}"


class ClassReservoirs(KeyedProcessFunction):
    """Stage 1: per (model key, class), a seeded reservoir per window and a late count."""

    def __init__(self, cfg: Config) -> None:
        self.settings = cfg.sampling
        self.seed = cfg.seed
        self.state: ValueState | None = None  # keyed state, made in open()

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("class-windows", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, event: Event, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        """Offer the event to its window; a late one is passed on as a :class:`LateExample`."""
        assert self.state is not None
        windows: ClassWindows | None = self.state.value()
        if windows is None:
            assert event.label is not None
            windows = ClassWindows(event.key, class_key(event.label), self.settings, self.seed)
        timers = ctx.timer_service()
        # An open window already has its timer, and a late count above zero already
        # has END_OF_INPUT's: register only on the first event of each (a registration
        # is a message to the JVM; before, every event sent one).
        opened = window_start(event.ts, windows.size) in windows.open
        was_late = windows.late > 0
        fire = windows.offer(event, timers.current_watermark())
        # A late event is counted with the class's next window, or at end of input;
        # the model hears at once that its window will send no batch for it.
        if fire is None:
            if not was_late:
                timers.register_event_time_timer(END_OF_INPUT)
            self.state.update(windows)
            yield LateExample(event.key, window_start(event.ts, windows.size))
            return
        if not opened:
            timers.register_event_time_timer(fire)
        self.state.update(windows)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        assert self.state is not None
        windows: ClassWindows | None = self.state.value()
        if windows is None:
            return
        summaries: list[ClassSummary] = []
        if timestamp == END_OF_INPUT:
            late = windows.take_late()
            if late is not None:
                summaries.append(late)
        else:
            for start in sorted(windows.open):
                if windows.fire_time(start) == timestamp:
                    summaries.append(windows.close(start))
        if windows.open or windows.late:
            self.state.update(windows)
        else:
            self.state.clear()
        yield from summaries


class AllocateWindow(KeyedProcessFunction):
    """Stage 2: per model key, allocate each window's training examples by strategy.

    Emits one :class:`~stratiflow.sampling.TrainingBatch` per window on the main
    output and its stats record (JSON) on the ``sampling-stats`` side output, and
    passes stage 1's :class:`~stratiflow.sampling.LateExample` notices on.
    """

    def __init__(self, cfg: Config) -> None:
        self.settings = cfg.sampling
        self.seed = cfg.seed
        self.tomek_links = cfg.curation.tomek_links
        self.state: ValueState | None = None  # keyed state, made in open()

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("window-allocator", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(
        self, summary: ClassSummary | LateExample, ctx: KeyedProcessFunction.Context
    ) -> Iterator[Any]:
        if isinstance(summary, LateExample):  # for the model's aligner
            yield summary
            return
        assert self.state is not None
        allocator: WindowAllocator | None = self.state.value()
        if allocator is None:
            allocator = WindowAllocator(
                summary.key, self.settings, self.seed, tomek_links=self.tomek_links
            )
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        fire = allocator.receive(summary)
        if fire is not None:
            ctx.timer_service().register_event_time_timer(fire)
        self.state.update(allocator)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        assert self.state is not None
        allocator: WindowAllocator | None = self.state.value()
        if allocator is None:
            return
        now = int(time.time() * 1000)
        for start in allocator.due(END_OF_TIME if timestamp == END_OF_INPUT else timestamp):
            batch, stats = allocator.close(start, now_ms=now)
            yield batch
            yield SAMPLING_STATS, to_json(stats)
        if timestamp == END_OF_INPUT:
            late = allocator.flush_late(now_ms=now)
            if late is not None:
                yield late[0]
                yield SAMPLING_STATS, to_json(late[1])
        self.state.update(allocator)
