"""backend.settings: defaults, overrides, path lists, the cached getter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.settings import Settings, get_settings


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.data_dir == tmp_path.resolve() / ".alignscope"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / '.alignscope' / 'alignscope.db'}"
    assert (settings.broker_url, settings.api_token, settings.model_roots, settings.dataset_roots) == (
        None,
        None,
        (),
        (),
    )


def test_overrides_and_path_lists(tmp_path):
    env = {
        "ALIGNSCOPE_DATA_DIR": str(tmp_path / "data"),
        "ALIGNSCOPE_DATABASE_URL": "postgresql+psycopg://u@db/alignscope",
        "ALIGNSCOPE_BROKER_URL": "redis://redis:6379/0",
        "ALIGNSCOPE_API_TOKEN": "",  # empty counts as unset
        "ALIGNSCOPE_MODEL_ROOTS": os.pathsep.join([str(tmp_path / "m1"), "", str(tmp_path / "m2")]),
        "ALIGNSCOPE_DATASET_ROOTS": str(tmp_path / "d"),
    }
    settings = Settings.from_env(env)
    assert settings.data_dir == tmp_path / "data"
    assert settings.database_url == "postgresql+psycopg://u@db/alignscope"
    assert (settings.broker_url, settings.api_token) == ("redis://redis:6379/0", None)
    assert settings.model_roots == (tmp_path / "m1", tmp_path / "m2")
    assert settings.dataset_roots == (tmp_path / "d",)
    with pytest.raises(ValidationError):  # frozen
        settings.api_token = "x"


def test_get_settings_reads_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_DATA_DIR", str(tmp_path / "one"))
    get_settings.cache_clear()
    try:
        first = get_settings()
        monkeypatch.setenv("ALIGNSCOPE_DATA_DIR", str(tmp_path / "two"))
        assert get_settings() is first and first.data_dir == Path(tmp_path / "one")
        get_settings.cache_clear()
        assert get_settings().data_dir == tmp_path / "two"
    finally:
        get_settings.cache_clear()
