"""One run's training: ``train(config, sink, should_stop, checkpoint_dir) -> RunSummary``.

The face of the engine (read ``loop.py`` first, top to bottom):

- ``worker.engine.loop.train`` / ``Trainer`` / ``RunSummary``: the training loop, its front door;
- ``worker.engine.objective.Objective``: one micro-batch's loss, β, keep mask and SFT term, built once
  from the config;
- ``worker.engine.step_metrics``: a step's outcomes → metric points and pair records;
- ``worker.engine.sinks``: the ``MetricsSink``s that need no database (console bar, list, tee);
- ``worker.engine.checkpoint``, ``distributed``, ``optimizers``;
- sub-packages ``data`` (rows → batches), ``model`` (loading and scoring), ``evaluation`` (hooks,
  win rates, judges, probes, reward model).

Nothing is imported here (importing a sub-module must not load torch and transformers twice over);
the engine never imports celery, sqlalchemy, fastapi or ``backend`` (import-linter checks it).
"""
