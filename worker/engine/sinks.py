"""MetricsSink implementations that need no database: ListSink (tests), ConsoleSink (a terminal
progress bar), TeeSink (several at once) and NullSink (non-main ranks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from tqdm import tqdm

from contracts import metric_keys as mk
from contracts.events import EvalRecord, Judgment, MetricPoint, PairRecord, PairText


class ListSink:
    """Keeps everything in memory: ``points``, ``pair_records``, ``pair_texts``, ``messages`` and
    ``checkpoints`` (folder, step)."""

    def __init__(self) -> None:
        self.checkpoints: list[tuple[str, int]] = []
        self.point_list: list[MetricPoint] = []
        self.pair_records: list[PairRecord] = []
        self.pair_texts: list[PairText] = []
        self.messages: list[tuple[str, float | None]] = []
        self.eval_records: list[EvalRecord] = []
        self.judgments: list[Judgment] = []

    def points(self, points: Sequence[MetricPoint]) -> None:
        self.point_list.extend(points)

    def pairs(self, records: Sequence[PairRecord]) -> None:
        self.pair_records.extend(records)

    def texts(self, texts: Sequence[PairText]) -> None:
        self.pair_texts.extend(texts)

    def evaluations(self, records: Sequence[EvalRecord], judgments: Sequence[Judgment]) -> None:
        self.eval_records.extend(records)
        self.judgments.extend(judgments)

    def status(self, message: str, progress: float | None = None) -> None:
        self.messages.append((message, progress))

    def flush(self) -> None:
        return None

    def checkpointed(self, path: str, step: int) -> None:
        self.checkpoints.append((path, step))

    def series(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of one key in emission order."""
        return [(p.step, p.value) for p in self.point_list if p.key == key]

    def keys_at(self, step: int) -> set[str]:
        """The metric keys emitted at ``step``."""
        return {p.key for p in self.point_list if p.step == step}


class NullSink:
    """Discards everything (the sink of non-main ranks)."""

    def points(self, points: Sequence[MetricPoint]) -> None:
        return None

    def pairs(self, records: Sequence[PairRecord]) -> None:
        return None

    def texts(self, texts: Sequence[PairText]) -> None:
        return None

    def evaluations(self, records: Sequence[EvalRecord], judgments: Sequence[Judgment]) -> None:
        return None

    def status(self, message: str, progress: float | None = None) -> None:
        return None

    def flush(self) -> None:
        return None

    def checkpointed(self, path: str, step: int) -> None:
        return None


class ConsoleSink:
    """A tqdm bar over optimizer steps showing loss, β and reward accuracy (ETA from tqdm)."""

    SHOWN: ClassVar[dict[str, str]] = {mk.TRAIN_LOSS: "loss", mk.TRAIN_BETA: "β", mk.REWARDS_ACCURACY: "acc"}

    def __init__(self, total_steps: int, description: str = "train") -> None:
        self._bar = tqdm(total=total_steps, desc=description, unit="step", dynamic_ncols=True)
        self._shown: dict[str, str] = {}

    def points(self, points: Sequence[MetricPoint]) -> None:
        step = self._bar.n
        for point in points:
            step = max(step, point.step)
            label = self.SHOWN.get(point.key)
            if label is not None:
                self._shown[label] = "nan" if not math.isfinite(point.value) else f"{point.value:.4g}"
        if self._shown:
            self._bar.set_postfix(self._shown, refresh=False)
        if step > self._bar.n:
            self._bar.update(step - self._bar.n)

    def pairs(self, records: Sequence[PairRecord]) -> None:
        return None

    def texts(self, texts: Sequence[PairText]) -> None:
        return None

    def evaluations(self, records: Sequence[EvalRecord], judgments: Sequence[Judgment]) -> None:
        return None

    def status(self, message: str, progress: float | None = None) -> None:
        if progress is None or "alert" in message or "stopped" in message or "failed" in message:
            self._bar.write(message)

    def flush(self) -> None:
        return None

    def checkpointed(self, path: str, step: int) -> None:
        return None

    def close(self) -> None:
        self._bar.close()


class TeeSink:
    """Forwards every call to each of ``sinks`` in order."""

    def __init__(self, *sinks: object) -> None:
        self._sinks = sinks

    def points(self, points: Sequence[MetricPoint]) -> None:
        for sink in self._sinks:
            sink.points(points)  # type: ignore[attr-defined]

    def pairs(self, records: Sequence[PairRecord]) -> None:
        for sink in self._sinks:
            sink.pairs(records)  # type: ignore[attr-defined]

    def texts(self, texts: Sequence[PairText]) -> None:
        for sink in self._sinks:
            sink.texts(texts)  # type: ignore[attr-defined]

    def evaluations(self, records: Sequence[EvalRecord], judgments: Sequence[Judgment]) -> None:
        for sink in self._sinks:
            sink.evaluations(records, judgments)  # type: ignore[attr-defined]

    def status(self, message: str, progress: float | None = None) -> None:
        for sink in self._sinks:
            sink.status(message, progress)  # type: ignore[attr-defined]

    def flush(self) -> None:
        for sink in self._sinks:
            sink.flush()  # type: ignore[attr-defined]

    def checkpointed(self, path: str, step: int) -> None:
        for sink in self._sinks:
            sink.checkpointed(path, step)  # type: ignore[attr-defined]
