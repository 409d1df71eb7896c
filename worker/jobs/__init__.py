"""The queue side: a queued row → a supervised process → the row's outcome (Celery app and tasks,
the run and group supervisors, the trainer process, the reconciler, the database sink)."""
