"""Storage: SQLAlchemy Core tables, plain functions taking a Connection, and Alembic migrations.

Modules: db (engines, upgrades), tables, runs, metrics, pairs, evaluations, exports, fencing
(StaleAttempt), bulk (batched idempotent inserts).
"""
