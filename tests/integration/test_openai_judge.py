"""The OpenAI-compatible judge against a local server that speaks /v1/chat/completions.

The server (a ThreadingHTTPServer on 127.0.0.1, port chosen by the OS) answers deterministically: it
prefers the response that contains the word "good", and says "A" when it cannot tell (a pure position
bias), so asking in both orders must turn that into a tie. Failures (429, 500, 400) are scripted per
test; every request it receives is recorded.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from contracts.config import JudgeConfig
from worker.engine.evaluation.openai_judge import JudgeError, OpenAIJudge, RateLimiter, combine, parse_choice

SHOWN = re.compile(r"Response A:\n(.*)\n\nResponse B:\n(.*)\n\nFIRST", re.S)


class Script:
    """Statuses to answer before the normal 200s, and every request body and header seen."""

    def __init__(self) -> None:
        self.failures: list[int] = []
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []


def _answer(content: str) -> str:
    a, b = SHOWN.search(content).groups()  # type: ignore[union-attr]
    pick = "B" if ("good" in b and "good" not in a) else "A"
    return f"Comparison: one of them says good.\nMore helpful: {pick}"


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            script.bodies.append(body)
            script.auth.append(self.headers.get("Authorization"))
            if self.path != "/v1/chat/completions":
                return self._send(404, {"error": "not found"})
            if script.failures:
                status = script.failures.pop(0)
                return self._send(status, {"error": {"message": f"scripted {status}"}}, {"Retry-After": "0"})
            content = body["messages"][0]["content"]
            reply = {
                "choices": [{"message": {"role": "assistant", "content": _answer(content)}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107},
            }
            return self._send(200, reply)

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return None

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def judge_for(url: str, **kwargs: object) -> OpenAIJudge:
    sleeps: list[float] = []
    judge = OpenAIJudge(url, "judge-model", "sk-test", 100_000, 3, sleep=sleeps.append, **kwargs)  # type: ignore[arg-type]
    judge.sleeps = sleeps  # type: ignore[attr-defined]
    return judge


def test_both_orders_cancel_position_bias(server: tuple[str, Script]) -> None:
    url, script = server
    judge = judge_for(url)
    verdicts = judge.compare(["q1", "q2", "q3"], ["a good reply", "meh", "plain"], ["meh", "so good", "flat"])
    assert [v.winner for v in verdicts] == ["a", "b", "tie"]  # the third: "A" in both orders → tie
    assert len(script.bodies) == 6  # two requests per prompt
    first, second = (b["messages"][0]["content"] for b in script.bodies[:2])
    assert SHOWN.search(first).groups() == ("a good reply", "meh")  # type: ignore[union-attr]
    assert SHOWN.search(second).groups() == ("meh", "a good reply")  # type: ignore[union-attr]
    assert script.bodies[0]["model"] == "judge-model" and script.bodies[0]["temperature"] == 0
    assert "More helpful: A" in verdicts[0].output and "More helpful: B" in verdicts[0].output
    assert script.auth[0] == "Bearer sk-test"


def test_retries_on_429_and_500_then_succeeds(server: tuple[str, Script]) -> None:
    url, script = server
    script.failures = [429, 500]
    judge = judge_for(url, backoff_s=0.5)
    assert judge.ask("Response A:\nx good\n\nResponse B:\ny\n\nFIRST").endswith("More helpful: A")
    assert judge.usage.requests == 3
    assert judge.sleeps == [0.0, 0.0]  # type: ignore[attr-defined]  # Retry-After: 0 is honoured


def test_backoff_doubles_without_retry_after() -> None:
    judge = OpenAIJudge("http://127.0.0.1:9/v1", "m", None, backoff_s=0.5, max_backoff_s=1.5)
    assert [judge._backoff(k, None) for k in range(4)] == [0.5, 1.0, 1.5, 1.5]  # 0.5·2^k capped at 1.5
    assert judge._backoff(0, "7") == 1.5 and judge._backoff(0, "soon") == 0.5


def test_gives_up_after_max_retries_and_on_client_errors(server: tuple[str, Script]) -> None:
    url, script = server
    script.failures = [503, 503, 503, 503]
    judge = judge_for(url)
    with pytest.raises(JudgeError, match="503"):
        judge.ask("Response A:\nx\n\nResponse B:\ny\n\nFIRST")
    assert judge.usage.requests == 4  # 1 + max_retries (3)
    script.failures = [401]
    with pytest.raises(JudgeError, match="api_key_env"):
        judge.ask("Response A:\nx\n\nResponse B:\ny\n\nFIRST")
    assert judge.usage.requests == 5  # a 401 is not retried


def test_unreachable_endpoint_raises_after_retries() -> None:
    judge = OpenAIJudge("http://127.0.0.1:9/v1", "m", None, max_retries=1, sleep=lambda s: None, timeout_s=2)
    with pytest.raises(JudgeError, match="unreachable"):
        judge.ask("hello")
    assert judge.usage.requests == 2


def test_cost_counter_sums_usage(server: tuple[str, Script]) -> None:
    url, _ = server
    judge = judge_for(url, price_per_million=(1.0, 2.0))
    judge.compare(["q"], ["good"], ["bad"])
    assert (judge.usage.prompt_tokens, judge.usage.completion_tokens) == (200, 14)  # 2 requests × (100, 7)
    assert judge.usage.cost == pytest.approx((200 * 1.0 + 14 * 2.0) / 1e6)  # 228 µ$


def test_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # 120/min → one every 0.5 s
    for _ in range(3):
        limiter.acquire()
    assert slept == [0.5, 0.5]
    now[0] += 2.0  # idle longer than the interval: no wait
    limiter.acquire()
    assert slept == [0.5, 0.5]


def test_rate_limit_is_applied_to_real_requests(server: tuple[str, Script]) -> None:
    url, script = server
    judge = OpenAIJudge(url, "m", None, requests_per_minute=600)  # 0.1 s between request starts
    started = time.perf_counter()
    judge.compare(["q1", "q2"], ["good", "x"], ["y", "good"])  # 4 requests
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 3.0  # three waits of 0.1 s, bounded above for a loaded machine
    assert script.auth == [None] * 4  # no key → no Authorization header


def test_from_config_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-env")
    endpoint = {"base_url": "http://127.0.0.1:9/v1/", "api_key_env": "MY_JUDGE_KEY", "models": ["gpt-x"]}
    monkeypatch.setenv("ALIGNSCOPE_JUDGE_ENDPOINTS", json.dumps({"lab": endpoint}))
    config = JudgeConfig(kind="openai", endpoint="lab", model="gpt-x")
    judge = OpenAIJudge.from_config(config)
    assert judge.url == "http://127.0.0.1:9/v1/chat/completions"
    assert judge.client.headers["Authorization"] == "Bearer sk-env"
    assert judge.name == "openai:gpt-x"


def test_parsing_and_combining() -> None:
    assert parse_choice("Comparison: x\nMore helpful: B") == "B"
    assert parse_choice('More helpful: "A"') == "A"
    assert parse_choice("I cannot decide") is None
    assert combine("A", "B") == "a" and combine("B", "A") == "b"
    assert combine("A", "A") == "tie" and combine(None, "B") == "tie"


def test_from_config_refuses_what_the_worker_was_not_configured_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker re-checks the endpoint and model against its own settings (issue 16.1)."""
    endpoints = {"lab": {"base_url": "http://x/v1", "models": ["a"]}}
    monkeypatch.setenv("ALIGNSCOPE_JUDGE_ENDPOINTS", json.dumps(endpoints))
    with pytest.raises(ValueError, match=r"evaluation\.judge\.endpoint: 'other' is not configured"):
        OpenAIJudge.from_config(JudgeConfig(kind="openai", endpoint="other", model="a"))
    with pytest.raises(ValueError, match=r"evaluation\.judge\.model: 'b' is not offered by 'lab'"):
        OpenAIJudge.from_config(JudgeConfig(kind="openai", endpoint="lab", model="b"))
