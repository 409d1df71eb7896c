"""What the training loop calls for evaluation and probe sets: built once, prepared before the first
update, called after every applied update, saved in the checkpoint.

Main rank only (the other ranks get an empty hook and wait in their next collective): generation and
judging run on the policy of rank 0, which equals every rank's policy. A toy-model run, or a run that
asks for neither, gets an empty hook. Without held-out pairs the training pairs are used, and the
run's status says so.
"""

from __future__ import annotations

from contracts.config import RunConfig
from contracts.events import MetricsSink
from worker.engine.distributed import World
from worker.engine.evaluation.probes import ProbeSet
from worker.engine.evaluation.win_rates import Evaluator, build_judge
from worker.engine.model.families import Family
from worker.engine.step_metrics import points_for


class EvalHooks:
    """An evaluator and/or a probe set (either may be None) writing to ``sink``."""

    def __init__(
        self, evaluator: Evaluator | None, probes: ProbeSet | None, sink: MetricsSink, max_steps: int = 1
    ) -> None:
        self.evaluator, self.probes, self.sink = evaluator, probes, sink
        self.max_steps = max_steps

    @classmethod
    def build(cls, config: RunConfig, family: Family, sink: MetricsSink, world: World) -> EvalHooks:
        """The hooks ``config.evaluation`` and ``config.probes`` ask for."""
        wanted_eval = bool(config.evaluation.every or config.evaluation.at_end)
        wanted = wanted_eval or bool(config.probes.every)
        if not wanted or not world.is_main:
            return cls(None, None, sink)
        tokenizer = getattr(family, "tokenizer", None)
        if tokenizer is None:
            sink.status("evaluation and probe sets need a language model; skipped for this run", None)
            return cls(None, None, sink)
        items = list(family.eval_items) or list(family.train_items)
        if not family.eval_items:
            sink.status("no held-out pairs: evaluation and probes use training prompts", None)
        policy = family.policy
        evaluator = None
        if wanted_eval:
            judge = build_judge(config.evaluation.judge)
            evaluator = Evaluator(config.evaluation, policy, tokenizer, items, judge)
        probes = (
            ProbeSet(config.probes, policy, tokenizer, items, config.seed) if config.probes.every else None
        )
        return cls(evaluator, probes, sink, config.optim.max_steps)

    def prepare(self) -> None:
        """Reference samples and reference log-probs, while the policy still equals πref."""
        if self.evaluator is not None:
            self.evaluator.prepare()
        if self.probes is not None:
            self.probes.prepare()

    def after_step(self, step: int, final: bool) -> dict[str, float]:
        """Probe values and win rates due at ``step`` (emitted as metric points; win rates also as
        evaluation rows); returns the values emitted."""
        values: dict[str, float] = {}
        if self.probes is not None and self.probes.due(step):
            values.update(self.probes.measure())
        if self.evaluator is not None and self.evaluator.due(step, final):
            self.sink.status(f"evaluating win rates at step {step}", step / self.max_steps)
            result = self.evaluator.evaluate(step)
            self.sink.evaluations(result.records, result.judgments)
            values.update(result.values)
        if values:
            self.sink.points(points_for(step, values))
        return values

    def state_dict(self) -> dict:
        return {
            "evaluator": self.evaluator.state_dict() if self.evaluator else {},
            "probes": self.probes.state_dict() if self.probes else {},
        }

    def load_state_dict(self, state: dict) -> None:
        if self.evaluator is not None and state.get("evaluator"):
            self.evaluator.load_state_dict(state["evaluator"])
        if self.probes is not None and state.get("probes"):
            self.probes.load_state_dict(state["probes"])
