"""Peak memory of a bench child: resident set size (Linux's resettable high-water mark) and, on CUDA,
memory allocated by tensors (``torch.cuda.max_memory_allocated``), overall and after the first step."""

from __future__ import annotations

import math
import resource
from pathlib import Path

from bench._gpu import peak_mb, peak_reset


class PeakMemory:
    """Peak RSS of this process in MiB: overall, and since the end of the first optimizer step (model
    loading and the reference precompute behind us), via Linux's resettable high-water mark."""

    def __init__(self) -> None:
        self._before: float | None = None
        self._gpu_before: float | None = None

    def first_step_done(self) -> None:
        """Records the peak so far and resets the high-water mark (once; later calls do nothing)."""
        if self._before is not None:
            return
        self._before = _high_water_mb()
        self._gpu_before = peak_mb()
        peak_reset()
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self._before = math.nan

    def report(self) -> dict[str, float | None]:
        """``rss_mb``: the whole process's peak; ``train_rss_mb``: the peak after the first step;
        ``gpu_mb`` and ``gpu_train_mb`` likewise for CUDA tensors (None without CUDA)."""
        gpu = peak_mb()
        gpu_whole = None if gpu is None else max(gpu, self._gpu_before or 0.0)
        figures = {"gpu_mb": gpu_whole, "gpu_train_mb": gpu if self._gpu_before is not None else None}
        now = _high_water_mb()
        if self._before is None or math.isnan(self._before):
            return {"rss_mb": now, "train_rss_mb": None, **figures}
        return {"rss_mb": max(self._before, now), "train_rss_mb": now, **figures}


def _high_water_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
