"""GGUF models de-quantized once and cached as safetensors folders.

De-quantizing SmolLM2-135M's GGUF file through ``from_pretrained(dir, gguf_file=...)`` peaks at about
3 GB of memory for a 0.54 GB float32 model, and takes seconds each time. The conversion therefore
runs once per GGUF file, in a child process (``python -m worker.engine.model.gguf_cache SRC DST``), whose
peak is gone when it exits; every later load reads the cached ``model.safetensors`` (memory-mapped)
and tokenizer files like any local ``from_pretrained`` folder.

The cache key is the GGUF file's resolved path, size and modification time plus the transformers
version (its de-quantization defines the weights). A finished folder holds ``CONVERTED``; folders are
written under a temporary name and renamed, so concurrent trainers never read a half-written one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from contracts.user_errors import UserError

DONE_MARK = "CONVERTED"


class GgufConversionError(UserError):
    """The child process could not de-quantize the GGUF file; the message carries its error."""


def cache_key(source: Path) -> str:
    """16 hex chars identifying ``source``'s content as seen by this transformers version."""
    stat = source.stat()
    text = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{metadata.version('transformers')}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def converted_dir(source: Path, cache_root: Path) -> Path:
    """The safetensors folder of GGUF file ``source`` under ``cache_root``/gguf, converting it first
    (in a child process, its progress on this process's stderr) when it is not cached yet."""
    target = cache_root / "gguf" / f"{source.stem}-{cache_key(source)}"
    if (target / DONE_MARK).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "worker.engine.model.gguf_cache", str(source), str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not (target / DONE_MARK).is_file():
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise GgufConversionError(
            f"could not de-quantize '{source}' (exit code {result.returncode}):\n{tail}"
        )
    return target


def convert(source: Path, target: Path) -> None:
    """De-quantizes ``source`` to float32 and writes model + tokenizer to ``target`` atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    # transformers flags a GGUF-loaded model as quantized although its weights are de-quantized
    # float32 tensors, and refuses to save it; the saved folder is a plain float32 model.
    model.is_quantized = False
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / DONE_MARK).write_text(f"{source.resolve()}\n")
    try:
        staging.rename(target)
    except OSError:  # another process finished first (or a stale unfinished folder is in the way)
        if (target / DONE_MARK).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            return
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
