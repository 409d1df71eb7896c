"""Validation errors a user can act on (contracts.validation_messages): the path as written, the
accepted values, "did you mean", and the fix — for the CLI's config errors as well as the API's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.config_files import ConfigError, apply_overrides, load_preset, validate
from backend.experiment_spec import ExperimentSpec
from contracts.config import RunConfig
from contracts.validation_messages import explain


def _problems(data: dict, model=RunConfig) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [(p.field, p.message) for p in explain(model, caught.value.errors())]


def test_a_tagged_union_path_drops_the_tag():
    [(field, message)] = _problems({"loss": {"kind": "flex", "beta_rejected": -1}})
    assert field == "loss.beta_rejected"  # pydantic: loss.flex.beta_rejected
    assert "0 < beta_rejected ≤ 100" in message


def test_missing_tag_lists_the_kinds_and_an_example():
    [(field, message)] = _problems({"loss": {"beta": 0.2}})
    assert field == "loss.kind"
    assert "'dpo', 'ipo', 'hinge', 'robust', 'sppo_hard', 'flex'" in message
    assert "e.g. loss: {kind: dpo" in message


def test_an_unknown_tag_guesses_the_closest_kind():
    [(field, message)] = _problems({"loss": {"kind": "sppo-hard"}})
    assert (field, "did you mean 'sppo_hard'?" in message) == ("loss.kind", True)


def test_a_literal_guesses_the_closest_value():
    [(field, message)] = _problems({"optim": {"optimizer": "adam"}})
    assert field == "optim.optimizer" and "did you mean 'adamw'?" in message


def test_a_whole_number_field_says_so():
    [(field, message)] = _problems({"seed": -1})
    assert field == "seed" and "a whole number, 0 ≤ seed ≤ 2147483647" in message


def test_a_list_item_keeps_its_index_and_the_accepted_values():
    [(field, message)] = _problems({"data": {"constructed": {"tasks": ["sort", "srot"]}}})
    assert field == "data.constructed.tasks.1" and "did you mean 'sort'?" in message


def test_a_section_given_as_a_word_shows_how_to_write_it():
    [(field, message)] = _problems({"loss": "dpo"})
    assert field == "loss" and "loss: {kind: dpo}" in message


def test_the_cli_config_error_uses_the_same_messages():
    data = apply_overrides(load_preset("tiny-dpo"), ["optim.lrr=0.1", "loss.beta=.nan"])
    with pytest.raises(ConfigError) as caught:
        validate(data)
    lines = str(caught.value).splitlines()
    assert any(line.startswith("optim.lrr: unknown field — did you mean 'lr'?") for line in lines)
    assert any(line.startswith("loss.beta: must be a finite number") for line in lines)


def test_an_experiment_spec_is_explained_against_its_own_model():
    problems = _problems({"name": "x", "runz": []}, ExperimentSpec)
    assert any(field == "runz" and "did you mean 'runs'?" in message for field, message in problems)
