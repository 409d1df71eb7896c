"""AlignScope's client: log a training run you run yourself to an AlignScope server.

``alignscope.init(...)`` opens a run (alignscope.run); ``alignscope.trl.DPOTrainer`` is a drop-in for
``trl.DPOTrainer`` that records per-pair diagnostics and can train β-DPO; ``alignscope.sync``
delivers a spool a run left behind. Importing this package imports neither torch nor TRL.
"""

from __future__ import annotations

from alignscope.run import Finished, Run, init

__all__ = ["Finished", "Run", "init"]
