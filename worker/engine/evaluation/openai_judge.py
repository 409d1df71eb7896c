"""A judge behind an OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint; the base URL
and key come from the operator's named endpoint (contracts.deployment), never from a run config.

The prompt is the pairwise dialogue prompt of the DPO paper (Rafailov et al. 2023, arXiv 2305.18290,
App. C.2), which β-DPO's GPT-4 evaluation follows. Every prompt is asked twice, with the responses in
both orders, to cancel position bias: ``a`` wins only when both orders pick it, ``b`` likewise, and
anything else (disagreement or an unparseable answer) is a tie.

Transport: one request at a time through ``httpx``; at most ``requests_per_minute`` request starts per
minute (a spacing limiter); 429, 5xx and connection errors are retried up to ``max_retries`` times
with exponential backoff (``Retry-After`` honoured, capped at ``max_backoff_s``); any other status
raises ``JudgeError``. Token usage from each response's ``usage`` is summed in ``usage``; its cost in US
dollars is (prompt_tokens · input price + completion_tokens · output price) / 10⁶ with the prices in
USD per million tokens (0 = unknown or free). Each judgment's output ends with its own usage line.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from contracts.config import JudgeConfig
from contracts.deployment import endpoint_for
from worker.engine.evaluation.judges import Verdict, Winner

DIALOGUE_PROMPT = """For the following query to a chatbot, which response is more helpful?

Query: {query}

Response A:
{response_a}

Response B:
{response_b}

FIRST provide a one-sentence comparison of the two responses and explain which you feel is more \
helpful. SECOND, on a new line, state only "A" or "B" to indicate which response is more helpful. \
Your response should use the format:
Comparison: <one-sentence comparison and explanation>
More helpful: <"A" or "B">"""
ANSWER = re.compile(r"More helpful:\s*\"?([AB])\b")
RETRIED_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class JudgeError(RuntimeError):
    """The endpoint refused or failed past the retries; the message says what to fix."""


@dataclass
class Usage:
    """Totals over every request: requests sent (retries included) and tokens from ``usage``;
    ``usd_per_million``: (input, output) prices in USD per million tokens."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd_per_million: tuple[float, float] = (0.0, 0.0)

    @property
    def cost(self) -> float:
        """US dollars for the tokens counted so far (computed from the integer totals, so it does not
        drift with the number of requests)."""
        price_in, price_out = self.usd_per_million
        return (self.prompt_tokens * price_in + self.completion_tokens * price_out) / 1e6

    def counts(self) -> dict[str, int]:
        """The counters, for a checkpoint (prices come from the config)."""
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


class RateLimiter:
    """At most ``per_minute`` acquisitions per 60 s: each waits until 60/per_minute seconds after the
    previous one. ``clock``/``sleep`` are injectable for tests."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute
        self.clock, self.sleep = clock, sleep
        self._next = -float("inf")

    def acquire(self) -> None:
        now = self.clock()
        if now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def parse_choice(text: str) -> str | None:
    """ "A" or "B" from a "More helpful: X" line (the last one), else None."""
    found = ANSWER.findall(text)
    return found[-1] if found else None


def combine(first: str | None, second: str | None) -> Winner:
    """first: the choice with (a, b) shown as (A, B); second: with (b, a) shown as (A, B)."""
    if first == "A" and second == "B":
        return "a"
    if first == "B" and second == "A":
        return "b"
    return "tie"


class OpenAIJudge:
    """Pairwise judge over an OpenAI-compatible endpoint (module docstring)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        requests_per_minute: int = 60,
        max_retries: int = 3,
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 60.0,
        price_per_million: tuple[float, float] = (0.0, 0.0),
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.name = f"openai:{model}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=timeout_s)
        self.max_retries = max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.limiter = limiter or RateLimiter(requests_per_minute)
        self.sleep = sleep
        self.usage = Usage(usd_per_million=price_per_million)

    @classmethod
    def from_config(cls, config: JudgeConfig) -> OpenAIJudge:
        """The judge of an ``openai`` JudgeConfig at the operator's endpoint ``config.endpoint``
        (ALIGNSCOPE_JUDGE_ENDPOINTS: base URL, key variable, models offered); the key is read from
        that variable (no Authorization header when it has none, for local servers). ValueError
        naming the field when the endpoint is not configured here or does not offer the model."""
        endpoint = endpoint_for(config.endpoint, os.environ)
        if "*" not in endpoint.models and config.model not in endpoint.models:
            offered = f"'{config.model}' is not offered by '{config.endpoint}'"
            raise ValueError(f"evaluation.judge.model: {offered}")
        return cls(
            endpoint.base_url,
            str(config.model),
            os.environ.get(endpoint.api_key_env) if endpoint.api_key_env else None,
            config.requests_per_minute,
            config.max_retries,
            price_per_million=(config.usd_per_million_input_tokens, config.usd_per_million_output_tokens),
        )

    def compare(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> list[Verdict]:
        verdicts = []
        for prompt, a, b in zip(prompts, responses_a, responses_b, strict=True):
            before = (self.usage.prompt_tokens, self.usage.completion_tokens)
            first = self.ask(DIALOGUE_PROMPT.format(query=prompt, response_a=a, response_b=b))
            second = self.ask(DIALOGUE_PROMPT.format(query=prompt, response_a=b, response_b=a))
            winner = combine(parse_choice(first), parse_choice(second))
            output = f"[a shown first]\n{first}\n\n[b shown first]\n{second}\n\n{self._usage_since(*before)}"
            verdicts.append(Verdict(winner, output))
        return verdicts

    def _usage_since(self, prompt_tokens: int, completion_tokens: int) -> str:
        """A "[usage] prompt_tokens=… completion_tokens=… cost_usd=…" line for the requests sent since
        the totals were (prompt_tokens, completion_tokens)."""
        spent = Usage(
            prompt_tokens=self.usage.prompt_tokens - prompt_tokens,
            completion_tokens=self.usage.completion_tokens - completion_tokens,
            usd_per_million=self.usage.usd_per_million,
        )
        return (
            f"[usage] prompt_tokens={spent.prompt_tokens} completion_tokens={spent.completion_tokens} "
            f"cost_usd={spent.cost:.6f}"
        )

    def ask(self, content: str) -> str:
        """The assistant message for one user message (temperature 0), with retries."""
        body = {"model": self.model, "messages": [{"role": "user", "content": content}], "temperature": 0}
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire()
            self.usage.requests += 1
            try:
                response = self.client.post(self.url, json=body)
            except httpx.TransportError as exc:
                if attempt == self.max_retries:
                    raise JudgeError(f"judge endpoint {self.url} unreachable: {exc}") from exc
                self.sleep(self._backoff(attempt, None))
                continue
            if response.status_code == 200:
                return self._read(response)
            if response.status_code not in RETRIED_STATUS or attempt == self.max_retries:
                hint = (
                    " — check the key in the endpoint's api_key_env (ALIGNSCOPE_JUDGE_ENDPOINTS)"
                    if response.status_code in (401, 403)
                    else ""
                )
                raise JudgeError(
                    f"judge endpoint answered {response.status_code}: {response.text[:300]}{hint}"
                )
            self.sleep(self._backoff(attempt, response.headers.get("retry-after")))
        raise JudgeError("unreachable")  # the loop always returns or raises

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        try:
            wanted = float(retry_after) if retry_after is not None else self.backoff_s * 2**attempt
        except ValueError:
            wanted = self.backoff_s * 2**attempt
        return min(max(wanted, 0.0), self.max_backoff_s)

    def _read(self, response: httpx.Response) -> str:
        data = response.json()
        usage = data.get("usage") or {}
        prompt_tokens, completion_tokens = (
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
        )
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        try:
            return str(data["choices"][0]["message"]["content"])
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge endpoint answered without choices[0].message.content: {data}") from exc

    def close(self) -> None:
        self.client.close()
