"""Tokenizers: a tiny byte-level BPE trained locally for the tiny models, and loading a local one.

The tiny tokenizer is trained with the ``tokenizers`` library on the constructed-task corpus (default
spec) plus a fixed English paragraph, digits and punctuation. Being byte-level, it encodes any text.
Special tokens: ``<|endoftext|>`` (eos, id 0), ``<|pad|>`` (pad, id 1), ``<|bos|>`` (bos, id 2); none
is added automatically when encoding. It carries ``TINY_CHAT_TEMPLATE`` so conversational data works.

It is cached under ``cache_dir/tiny-bpe-<vocab>-<digest>`` where the digest covers the corpus and the
settings, so a second call loads it; training is deterministic, and the folder is written to a
temporary name and renamed, so concurrent builders never see a half-written tokenizer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from contracts.config import ConstructedDataSpec
from worker.engine.data.constructed import constructed_rows

EOS, PAD, BOS = "<|endoftext|>", "<|pad|>", "<|bos|>"
BUILD_VERSION = "1"
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
ENGLISH = """\
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs!
Human: Can you help me with a question? Assistant: Sure, I am happy to help. What would you like to know?
It was a bright cold day in April, and the clocks were striking thirteen; "Why?" she asked (again).
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14 -7 +5 = 12 * 3 / 4 % 50
Punctuation: , . ; : ! ? ' " ( ) [ ] { } < > @ # $ & _ - + = / \\ | ~ ^ `
ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz
"""


def default_corpus() -> list[str]:
    """The constructed-task texts of the default spec plus the fixed English text."""
    texts = [ENGLISH, "<|system|>\n<|user|>\n<|assistant|>\n"]
    for row in constructed_rows(ConstructedDataSpec()):
        texts.extend((str(row.prompt), str(row.chosen), str(row.rejected)))
    return texts


def build_tiny_tokenizer(
    cache_dir: Path, corpus: Iterable[str] | None = None, vocab_size: int = 512
) -> PreTrainedTokenizerFast:
    """Train (or load from ``cache_dir``) a byte-level BPE of at most ``vocab_size`` tokens.

    corpus: texts to learn merges from; None means ``default_corpus()``. The same corpus and size give
    the same tokenizer, from the same folder.
    """
    texts = default_corpus() if corpus is None else list(corpus)
    digest = hashlib.sha256(f"{BUILD_VERSION}:{vocab_size}".encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode("utf-8")).digest())
    folder = Path(cache_dir) / f"tiny-bpe-{vocab_size}-{digest.hexdigest()[:12]}"
    if not (folder / "tokenizer.json").exists():
        _train(texts, vocab_size, folder)
    return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def _train(texts: list[str], vocab_size: int, folder: Path) -> None:
    """Train the BPE and save it as a transformers tokenizer folder at ``folder`` (atomically)."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD, BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS, pad_token=PAD, bos_token=BOS, chat_template=TINY_CHAT_TEMPLATE
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-bpe-", dir=folder.parent))
    try:
        wrapped.save_pretrained(str(staging))
        os.replace(staging, folder)
    except OSError:
        if not (folder / "tokenizer.json").exists():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """A tokenizer from a local folder (or a ``tokenizer.json`` file), never downloading and never
    running remote code. A tokenizer without a pad token gets its eos token as pad."""
    location = Path(path)
    if location.is_file():
        tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(location))
    else:
        tokenizer = AutoTokenizer.from_pretrained(
            str(location), local_files_only=True, trust_remote_code=False
        )
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
