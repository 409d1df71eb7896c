"""An experiment preset's description never contradicts what its runs do (issue 19 item 9: the toy
experiment said 3000 steps while the toy presets run 6000): every "N … steps" in a description or
runtime note is a step count of its runs (full or --quick), and the API lists those counts."""

from __future__ import annotations

import re

import pytest

from backend.api.routers.experiments import list_presets
from backend.config_files import list_presets as preset_names
from backend.config_files import load_preset
from backend.experiment_spec import list_experiments, load_experiment, step_counts

STEPS = re.compile(r"\b(\d[\d,]*) (?:[A-Za-z-]+ ){0,3}steps\b")  # "9 runs of 16 steps" is 16
NOT_RUN_STEPS = ("warm-up", "warmup", "SFT", "sft")  # "a 3-step SFT warm-up" counts other steps


@pytest.mark.parametrize("name", list_experiments())
def test_stated_step_counts_are_the_runs_step_counts(name: str) -> None:
    spec = load_experiment(name)
    allowed = set(step_counts(spec, False)) | set(step_counts(spec, True))
    text = f"{spec.description} {spec.runtime_note}"
    for match in STEPS.finditer(text):
        if any(word in match.group(0) for word in NOT_RUN_STEPS):
            continue
        assert int(match.group(1).replace(",", "")) in allowed, (name, match.group(0), sorted(allowed))


def test_the_toy_experiment_lists_its_step_counts_and_the_toy_presets_run_as_many() -> None:
    toy = next(e for e in list_presets() if e.name == "toy-3d")
    assert (toy.steps, toy.quick_steps) == ([3000], [1500])
    toys = [name for name in preset_names() if name.startswith("toy-3d")]
    assert len(toys) == 6
    for name in toys:  # the single toy presets are the experiment's runs: same length as its description
        assert load_preset(name)["optim"]["max_steps"] in toy.steps, name
