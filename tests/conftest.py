"""Shared pytest fixtures. Keep each one small and specifically named."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """The tiny byte-level BPE (512 tokens, eos/pad/bos, TINY_CHAT_TEMPLATE), built once per session."""
    from worker.engine.data.tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer(Path(tmp_path_factory.mktemp("tiny-tokenizer")))
