"""``alignscope.init``: open a run on an AlignScope server and log to it from any training script.

    run = alignscope.init("my-dpo", config={"loss": {"kind": "dpo", "beta": 0.1}},
                          url="http://127.0.0.1:8000", token="...")
    run.log({"train/loss": 0.69}, step=1)          # any metric keys; contracts.metric_keys are charted
    run.log_pairs(records, texts)                   # per-pair records (contracts.events.PairRecord)
    if run.stop_requested: ...                      # the dashboard's Stop button
    run.finish()                                    # or run.fail("why"); a with-block does either

Nothing here waits for the network: messages go to a background sender (alignscope.sender) that
spools to ``spool_dir`` while the server is unreachable. With no url (argument or ALIGNSCOPE_URL)
the run is offline: everything is spooled for ``alignscope sync``.
"""

from __future__ import annotations

import itertools
import logging
import os
import platform
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignscope.sender import Sender
from alignscope.spool import Spool
from alignscope.transport import HttpTransport
from contracts.events import MetricPoint, PairRecord, PairText
from contracts.ingest import RUN_ID_PATTERN

log = logging.getLogger("alignscope")
Rows = Callable[[], list[list[object]]]  # wire rows, built when the sender thread takes the message
DEFAULT_SPOOL_DIR = Path(".alignscope") / "spool"


@dataclass(frozen=True)
class Finished:
    """How ``finish`` ended: delivered is True when the server has every message; otherwise the
    rest is in ``spool`` (deliver it with ``alignscope sync SPOOL_DIR``)."""

    status: str
    delivered: bool
    spool: Path


class Run:
    """One external run; create it with ``alignscope.init``."""

    def __init__(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        url: str | None,
        token: str | None,
        source: str,
        environment: Mapping[str, Any],
        total_steps: int | None,
        spool_dir: Path,
        run_id: str | None,
        sender_options: Mapping[str, float] | None = None,
    ) -> None:
        if run_id is not None and not re.fullmatch(RUN_ID_PATTERN, run_id):
            raise ValueError(f"run_id {run_id!r}: expected 32 lowercase hex digits, e.g. uuid.uuid4().hex")
        self.id = run_id or uuid.uuid4().hex
        self.name = name
        self.url = url
        self.spool = Spool(spool_dir, self.id)
        transport = _transport(url, token) if url else None
        self._stop = threading.Event()
        self._seq = itertools.count()
        self._sender = Sender(self.id, transport, self.spool, on_ack=self._ack, **dict(sender_options or {}))
        self.finished: Finished | None = None
        self._put("open", {"name": name, "source": source, "config": dict(config),
                           "environment": dict(environment), "total_steps": total_steps})  # fmt: skip

    # ------------------------------------------------------------------ logging (never blocks)

    def log(self, values: Mapping[str, float], step: int, **status: Any) -> None:
        """Metric points ``values`` at optimizer step ``step`` (now as wall time)."""
        now = time.time()
        self.log_step(step, [MetricPoint(k, step, float(v), now) for k, v in values.items()], **status)

    def log_pairs(self, records: Sequence[PairRecord], texts: Sequence[PairText] = ()) -> None:
        """Per-pair records (and the texts of pairs not sent before)."""
        self._put("batch", {"pairs": list(records), "texts": list(texts)})

    def log_step(
        self,
        step: int,
        points: Sequence[MetricPoint] = (),
        records: Sequence[PairRecord] | Rows = (),
        texts: Sequence[PairText] | Rows = (),
        message: str | None = None,
        progress: float | None = None,
    ) -> None:
        """Everything of one step in one message (the cheapest way to log). Rows may also be given in
        their wire form (lists in contracts.ingest column order), and records and texts as a
        zero-argument callable returning those, called on the sender thread (alignscope.trl does:
        the training thread then builds no per-pair object)."""
        body = {"points": list(points), "step": step, **{name: rows if callable(rows) else list(rows)
                for name, rows in (("pairs", records), ("texts", texts))}}  # fmt: skip
        body.update({k: v for k, v in (("message", message), ("progress", progress)) if v is not None})
        self._put("batch", body)

    @property
    def stop_requested(self) -> bool:
        """True once the dashboard asked this run to stop (as of the last acknowledgement)."""
        return self._stop.is_set()

    # ------------------------------------------------------------------ the end

    def finish(self, status: str = "succeeded", error: str | None = None, timeout_s: float = 30) -> Finished:
        """End the run and deliver what is left for up to ``timeout_s`` seconds (the rest stays in the
        spool, with a warning naming the command that delivers it). A second call does nothing."""
        if self.finished is not None:
            return self.finished
        self._put("finish", {"status": status, "error": error})
        delivered = self._sender.close(timeout_s)
        self.finished = Finished(status, delivered, self.spool.path)
        if not delivered:
            print(
                f"alignscope: run {self.id} could not reach {self.url or 'a server (offline run)'}; its "
                f"rows are in {self.spool.path}. Deliver them with: alignscope sync {self.spool.folder}",
                file=sys.stderr,
            )
        return self.finished

    def fail(self, error: str, timeout_s: float = 30.0) -> Finished:
        """End the run as failed with ``error``."""
        return self.finish("failed", error[-20_000:], timeout_s)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.finish("stopped" if self.stop_requested else "succeeded")
        else:
            self.fail(f"{kind.__name__ if kind else 'Error'}: {exc}")

    # ------------------------------------------------------------------ internals

    def _put(self, kind: str, body: dict[str, Any]) -> None:
        if self.finished is not None:
            raise RuntimeError(f"run {self.id} is finished; log before finish()")
        self._sender.put({"seq": next(self._seq), "kind": kind, "body": body})

    def _ack(self, ack: Mapping[str, Any]) -> None:
        if ack.get("stop_requested"):
            self._stop.set()


def _transport(url: str, token: str | None) -> HttpTransport | Any:
    """HTTP for http(s):// URLs; any other URL is a database on this machine (alignscope.store)."""
    if url.startswith(("http://", "https://")):
        return HttpTransport(url, token)
    from alignscope.store import StoreTransport  # imports the storage layer only when asked for

    return StoreTransport(url)


def environment() -> dict[str, Any]:
    """Python, platform and the versions of the packages a run usually depends on."""
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    from importlib import metadata

    for name in ("alignscope", "torch", "transformers", "trl", "accelerate", "peft", "datasets"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def init(
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    source: str = "python",
    environment_extra: Mapping[str, Any] | None = None,
    total_steps: int | None = None,
    spool_dir: str | Path | None = None,
    run_id: str | None = None,
    sender_options: Mapping[str, float] | None = None,
) -> Run:
    """Open a run. url: the server (http://…) or a store on this machine (a database URL such as
    sqlite:///data/alignscope.db). url/token default to ALIGNSCOPE_URL / ALIGNSCOPE_API_TOKEN, spool_dir to
    ALIGNSCOPE_SPOOL_DIR or ./.alignscope/spool; run_id (32 hex digits) is generated when not given."""
    url = url or os.environ.get("ALIGNSCOPE_URL") or None
    token = token or os.environ.get("ALIGNSCOPE_API_TOKEN") or None
    folder = Path(spool_dir or os.environ.get("ALIGNSCOPE_SPOOL_DIR") or DEFAULT_SPOOL_DIR)
    return Run(
        name or f"run-{time.strftime('%Y%m%d-%H%M%S')}",
        config or {},
        url=url,
        token=token,
        source=source,
        environment={**environment(), **dict(environment_extra or {})},
        total_steps=total_steps,
        spool_dir=folder,
        run_id=run_id,
        sender_options=sender_options,
    )
