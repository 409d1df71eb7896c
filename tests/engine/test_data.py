"""worker.engine.data (pairs, tokenizer): rows → token pairs → batches, and the sampler."""

import json
from pathlib import Path

import pytest
import torch

from contracts.config import ConstructedDataSpec, DataConfig
from contracts.pairs import DatasetError, PreferenceRow
from worker.engine.data import tokenizer as tokenizer_module
from worker.engine.data.bundled import FILES
from worker.engine.data.pairs import (
    PairSampler,
    TokenizedPair,
    batch_token_count,
    collate,
    load_pairs,
    tokenize_row,
)
from worker.engine.data.tokenizer import build_tiny_tokenizer, load_tokenizer

HH_TEST = FILES["hh-rlhf-harmless-base-test"]  # shipped in the package (data.source: bundled)


@pytest.fixture(scope="module")
def byte_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    """259 tokens = 256 bytes + 3 specials, so no merges: one ASCII character is one token."""
    return build_tiny_tokenizer(tmp_path_factory.mktemp("bytes"), corpus=["abc"], vocab_size=259)


def write_jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    return str(path)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------------------------------ tokenizer


def test_tiny_tokenizer_is_cached_and_deterministic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_tiny_tokenizer(tmp_path / "a")
    monkeypatch.setattr(tokenizer_module, "_train", lambda *args: pytest.fail("retrained a cached tokenizer"))
    again = build_tiny_tokenizer(tmp_path / "a")
    monkeypatch.undo()
    elsewhere = build_tiny_tokenizer(tmp_path / "b")
    (folder,) = (tmp_path / "a").iterdir()
    assert len(first) == 512 and again.get_vocab() == first.get_vocab() == elsewhere.get_vocab()
    assert json.loads((folder / "tokenizer.json").read_text()) == json.loads(
        next((tmp_path / "b").iterdir()).joinpath("tokenizer.json").read_text()
    )
    assert (first.eos_token, first.pad_token, first.bos_token) == ("<|endoftext|>", "<|pad|>", "<|bos|>")
    assert (first.eos_token_id, first.pad_token_id, first.bos_token_id) == (0, 1, 2)


def test_tiny_tokenizer_round_trips_any_text(tiny_tokenizer) -> None:
    text = "What is 17 + 25?\n\nAssistant: héllo wörld — 😀 ∑ tabs\tand  spaces"
    ids = encode(tiny_tokenizer, text)
    assert tiny_tokenizer.decode(ids) == text
    assert encode(tiny_tokenizer, "hi") == tiny_tokenizer("hi")["input_ids"]  # no special token added
    # the constructed corpus is learned: a prompt takes far fewer tokens than its 16 bytes
    assert len(encode(tiny_tokenizer, "What is 17 + 25?")) < 10


def test_load_tokenizer_from_folder_and_file(tiny_tokenizer, tmp_path: Path) -> None:
    tiny_tokenizer.save_pretrained(str(tmp_path / "saved"))
    loaded = load_tokenizer(str(tmp_path / "saved"))
    assert loaded.get_vocab() == tiny_tokenizer.get_vocab() and loaded.pad_token_id == 1
    bare = load_tokenizer(str(tmp_path / "saved" / "tokenizer.json"))
    assert encode(bare, "Sort: 3 1 2") == encode(tiny_tokenizer, "Sort: 3 1 2")


# -------------------------------------------------------------------------------------- tokenization


def test_truncation_policy_by_hand(byte_tokenizer) -> None:
    eos = byte_tokenizer.eos_token_id
    row = PreferenceRow("abcdefgh", "xy", "uvwxyz", line=1, source="mem", format="standard")
    pair, truncated = tokenize_row(row, byte_tokenizer, max_length=7, max_prompt_length=4)
    # prompt keeps its last 4 tokens "efgh"; budget 7 − 4 = 3: chosen "xy"+EOS fits, rejected keeps "uvw"
    assert pair.prompt_ids == tuple(encode(byte_tokenizer, "efgh"))
    assert pair.chosen_ids == (*encode(byte_tokenizer, "xy"), eos)
    assert pair.rejected_ids == tuple(encode(byte_tokenizer, "uvw"))
    assert truncated and pair.prompt_text == "abcdefgh"  # texts stay whole, for display
    fits, cut = tokenize_row(row, byte_tokenizer, max_length=20, max_prompt_length=10)
    assert not cut and fits.rejected_ids == (*encode(byte_tokenizer, "uvwxyz"), eos)


def test_truncation_counts_and_drops(byte_tokenizer, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "rows.jsonl",
        [
            {"prompt": "ab", "chosen": "c", "rejected": "d"},  # 1: 2 + 2 tokens, fits
            {"prompt": "abcdefghij", "chosen": "c", "rejected": "d"},  # 2: prompt cut to 4
            {"prompt": "ab", "chosen": "cccccccc", "rejected": "d"},  # 3: chosen cut to 8 − 2 = 6
            {"prompt": "ab", "chosen": "ccccccc1", "rejected": "ccccccc2"},  # 4: both "cccccc": dropped
        ],
    )
    config = DataConfig(source="file", path=path, max_length=8, max_prompt_length=4)
    data = load_pairs(config, byte_tokenizer)
    assert [len(pair.prompt_ids) for pair in data.train] == [2, 4, 2]
    assert len(data.train[2].chosen_ids) == 6
    assert (data.stats.truncated, data.stats.dropped, data.stats.invalid) == (3, 1, 0)
    (problem,) = data.stats.problems
    assert (problem.line, problem.field) == (4, "rejected") and "max_length" in problem.message


def test_invalid_rows_are_skipped_and_reported(byte_tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{broken\n', encoding="utf-8")
    data = load_pairs(DataConfig(source="file", path=str(path)), byte_tokenizer)
    assert len(data.train) == 1 and data.stats.rows == 2 and data.stats.invalid == 1
    assert [(p.line, p.field) for p in data.stats.problems] == [(2, "json")]


def test_duplicates_are_kept_once(byte_tokenizer, tmp_path: Path) -> None:
    record = {"prompt": "a", "chosen": "b", "rejected": "c"}
    path = write_jsonl(tmp_path / "rows.jsonl", [record, {**record, "rejected": "d"}, record])
    data = load_pairs(DataConfig(source="file", path=path), byte_tokenizer)
    assert [pair.rejected_text for pair in data.train] == ["c", "d"] and data.stats.duplicates == 1


def test_conversational_rows_use_the_chat_template(tiny_tokenizer, tmp_path: Path) -> None:
    record = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello"}],
        "rejected": [{"role": "assistant", "content": "Go away"}],
    }
    path = write_jsonl(tmp_path / "chat.jsonl", [record])
    data = load_pairs(DataConfig(source="file", path=path), tiny_tokenizer)
    (pair,) = data.train
    assert data.stats.detected_format == "conversational"
    assert pair.prompt_text == "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"
    assert (pair.chosen_text, pair.rejected_text) == ("Hello\n", "Go away\n")
    assert pair.prompt_ids == tuple(encode(tiny_tokenizer, pair.prompt_text))
    assert pair.chosen_ids == (*encode(tiny_tokenizer, "Hello\n"), tiny_tokenizer.eos_token_id)


def test_conversational_rows_need_a_chat_template(tiny_tokenizer, tmp_path: Path) -> None:
    record = {
        "prompt": [{"role": "user", "content": "Hi"}],
        "chosen": [{"role": "assistant", "content": "Hello"}],
        "rejected": [{"role": "assistant", "content": "Bye"}],
    }
    tiny_tokenizer.save_pretrained(str(tmp_path / "tok"))
    plain = load_tokenizer(str(tmp_path / "tok"))
    plain.chat_template = None
    with pytest.raises(DatasetError, match="chat template"):
        load_pairs(DataConfig(source="file", path=write_jsonl(tmp_path / "c.jsonl", [record])), plain)


def test_real_hh_rows_tokenize(tiny_tokenizer) -> None:
    config = DataConfig(source="file", path=str(HH_TEST), max_rows=200, max_length=256, max_prompt_length=128)
    data = load_pairs(config, tiny_tokenizer)
    assert data.stats.rows == 200 and data.stats.detected_format == "hh"
    # line 87 (an empty last chosen turn) is the only bad row among the first 200
    assert [p.line for p in data.stats.problems] == [87] and len(data.train) == 199
    assert all(len(p.prompt_ids) <= 128 and len(p.prompt_ids) + len(p.chosen_ids) <= 256 for p in data.train)
    assert all(p.prompt_text.endswith("\n\nAssistant:") for p in data.train)


# --------------------------------------------------------------------------------- sources and splits


def test_eval_fraction_split_depends_on_the_data_only(tiny_tokenizer) -> None:
    config = DataConfig(constructed=ConstructedDataSpec(num_pairs=40), eval_fraction=0.25)
    data = load_pairs(config, tiny_tokenizer)
    # round(0.25 · 40) = 10 held out: the 10 smallest pair ids
    ids = sorted(pair.pair_id for pair in data.train + data.eval)
    assert len(data.eval) == 10 and {pair.pair_id for pair in data.eval} == set(ids[:10])
    assert len(data.train) == 30 and not {p.pair_id for p in data.train} & {p.pair_id for p in data.eval}
    assert load_pairs(config, tiny_tokenizer) == data


def test_eval_path_is_held_out_from_training(byte_tokenizer, tmp_path: Path) -> None:
    records = [{"prompt": "a", "chosen": "b", "rejected": c} for c in "cdef"]
    train = write_jsonl(tmp_path / "train.jsonl", records)
    extra = {"prompt": "x", "chosen": "y", "rejected": "z"}
    held = write_jsonl(tmp_path / "eval.jsonl", [*records[2:], extra])
    config = DataConfig(source="file", path=train, eval_path=held, eval_fraction=0.5)
    data = load_pairs(config, byte_tokenizer)
    assert [p.rejected_text for p in data.train] == ["c", "d"]  # e and f are eval pairs: removed
    assert [p.rejected_text for p in data.eval] == ["e", "f", "z"]  # eval_fraction ignored
    assert data.stats.duplicates == 2 and data.stats.rows == 7


def test_hub_source_reads_the_named_split(byte_tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake_load_dataset(name: str, split: str) -> list[dict]:
        calls.append((name, split))
        return [{"prompt": "a", "chosen": "b", "rejected": split}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    config = DataConfig(source="hub", path="org/prefs", eval_path="org/prefs:validation")
    data = load_pairs(config, byte_tokenizer)
    assert calls == [("org/prefs", "train"), ("org/prefs", "validation")]
    assert [p.rejected_text for p in data.train + data.eval] == ["train", "validation"]


def test_max_rows_and_toy_source(tiny_tokenizer) -> None:
    data = load_pairs(DataConfig(max_rows=10), tiny_tokenizer)
    assert len(data.train) == 10 and data.stats.rows == 10
    with pytest.raises(DatasetError, match="toy"):
        load_pairs(DataConfig(source="toy"), tiny_tokenizer)


# ---------------------------------------------------------------------------------------- batching


def test_collate_masks_prompt_and_pad_exactly() -> None:
    first = TokenizedPair("p1", (5, 6), (7, 0), (8, 9, 0), "", "", "")
    second = TokenizedPair("p2", (5,), (10, 0), (11, 0), "", "", "")
    batch = collate([first, second], pad_id=1)
    x = -100
    # rows: p1+chosen (4 tokens), p2+chosen (3), p1+rejected (5), p2+rejected (3); T = 5
    assert batch.input_ids.tolist() == [[5, 6, 7, 0, 1], [5, 10, 0, 1, 1], [5, 6, 8, 9, 0], [5, 11, 0, 1, 1]]
    mask = [[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch.attention_mask.tolist() == mask
    assert batch.labels.tolist() == [[x, x, 7, 0, x], [x, 10, 0, x, x], [x, x, 8, 9, 0], [x, 11, 0, x, x]]
    assert batch.input_ids.dtype == batch.labels.dtype == batch.attention_mask.dtype == torch.long
    assert (batch.pair_ids, batch.size) == (["p1", "p2"], 2)
    assert batch_token_count(batch) == 15  # 4 + 3 + 5 + 3
    with pytest.raises(ValueError):
        collate([], pad_id=1)


def test_collate_shapes_on_real_pairs(tiny_tokenizer) -> None:
    pairs = load_pairs(DataConfig(max_rows=12), tiny_tokenizer).train[:5]
    batch = collate(pairs, tiny_tokenizer.pad_token_id).to("cpu")
    longest = max(len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs)
    assert batch.input_ids.shape == batch.labels.shape == batch.attention_mask.shape == (10, longest)
    # every response token is labelled, nothing else: 2B rows' response lengths
    expected = sum(len(p.chosen_ids) + len(p.rejected_ids) for p in pairs)
    assert int((batch.labels != -100).sum()) == expected


def pairs_named(count: int) -> list[TokenizedPair]:
    return [TokenizedPair(f"id{i}", (1,), (2,), (3,), "", "", "") for i in range(count)]


def ids_of(batch: list[TokenizedPair]) -> list[str]:
    return [pair.pair_id for pair in batch]


def test_sampler_epochs_are_seeded_permutations() -> None:
    pairs = pairs_named(10)
    sampler = PairSampler(pairs, seed=5)
    epoch0 = [ids_of(sampler.next_micro_batch(3)) for _ in range(3)]  # 9 of 10: the 10th is skipped
    assert len({pair_id for batch in epoch0 for pair_id in batch}) == 9 and sampler.epoch == 0
    first_of_epoch1 = ids_of(sampler.next_micro_batch(3))
    assert sampler.epoch == 1 and sampler.index == 3
    again = PairSampler(pairs, seed=5)
    assert [ids_of(again.next_micro_batch(3)) for _ in range(4)] == [*epoch0, first_of_epoch1]
    other = PairSampler(pairs, seed=6)
    assert [ids_of(other.next_micro_batch(3)) for _ in range(3)] != epoch0
    ordered = PairSampler(pairs, seed=5, shuffle=False)
    assert ids_of(ordered.next_micro_batch(4)) == ["id0", "id1", "id2", "id3"]


def test_sampler_resume_equals_uninterrupted() -> None:
    pairs = pairs_named(7)
    straight = PairSampler(pairs, seed=1)
    expected = [ids_of(straight.next_micro_batch(2)) for _ in range(10)]
    interrupted = PairSampler(pairs, seed=1)
    head = [ids_of(interrupted.next_micro_batch(2)) for _ in range(4)]
    state = json.loads(json.dumps(interrupted.state_dict()))  # survives serialisation
    resumed = PairSampler(pairs, seed=1)
    resumed.load_state_dict(state)
    assert head + [ids_of(resumed.next_micro_batch(2)) for _ in range(6)] == expected
    with pytest.raises(ValueError, match="seed, num_pairs"):
        PairSampler(pairs_named(8), seed=1).load_state_dict(state)


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_concatenate_to_the_single_process_batch(world_size: int) -> None:
    pairs = pairs_named(13)
    single = PairSampler(pairs, seed=2)
    ranks = [PairSampler(pairs, seed=2, rank=r, world_size=world_size) for r in range(world_size)]
    for _ in range(6):
        whole = ids_of(single.next_micro_batch(2 * world_size))
        shards = [ids_of(rank.next_micro_batch(2)) for rank in ranks]
        assert [pair_id for shard in shards for pair_id in shard] == whole
    assert len({json.dumps(rank.state_dict()) for rank in ranks}) == 1
    with pytest.raises(ValueError):
        PairSampler(pairs, seed=2, rank=world_size, world_size=world_size)
    with pytest.raises(ValueError):
        ranks[0].next_micro_batch(7)  # 7 · world_size > 13 pairs
