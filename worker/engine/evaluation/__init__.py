"""Evaluation during training: the loop's hooks, win rates, generation, probe sets, judges (rule,
reward model, OpenAI-compatible, a user's own) and the reward model."""
