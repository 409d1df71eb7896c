"""Upload memory benchmark (issue 16.6): the API process's peak memory while it ingests the largest
uploads its caps allow, against the whole-file validation the API ran before (``read_rows``) on the
same file, in the same run.

Run from the repository root::

    .venv/bin/python -m bench.upload_memory               # the default caps: ~3 min on 2 cores
    .venv/bin/python -m bench.upload_memory --scale 0.1   # a tenth of each cap: a smoke run

What is measured:

- ours: a real API process (``uvicorn`` serving ``backend.api.create_app`` with its default caps,
  scaled by ``--scale``) on a fresh data dir receives, by HTTP multipart from this process, (a) a
  JSONL file of ``max_upload_bytes`` (200 MiB at scale 1) and (b) a .jsonl.gz whose text fills
  ``max_decompressed_bytes`` (512 MiB) in ``max_upload_rows`` rows or fewer. Each upload must be
  accepted (201). The server's resident set (``VmRSS`` of /proc/<pid>/status) is sampled every
  10 ms from before the request until the reply; ``peak_mib`` is the largest sample, ``delta_mib``
  that minus the idle sample taken just before.
- peer: ``contracts.pairs.read_rows(path)`` — the whole-file read and validation the upload route
  used before this change — on file (a), in a child process; its ``VmHWM`` (peak resident set)
  minus its resident set after imports.

The last line on stdout is one JSON object: both figures per file, ``ratio = ours delta / peer
delta`` for file (a), the stated budget (``budget_mib``: the API's peak must stay under it) and
``meets_budget``, plus ``loadavg_1min`` before and after (a loaded machine makes the timings, not
the memory, noisy).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from backend.api.options import ApiOptions

BUDGET_MIB = 400
REPO = Path(__file__).resolve().parents[1]
PEER = """
import os, sys
from contracts.pairs import read_rows
import pyarrow  # noqa: F401 — imported like the API's process may have it
def rss(field):
    for line in open(f"/proc/{os.getpid()}/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
base = rss("VmRSS:")
rows, report = read_rows(sys.argv[1])
print(base, rss("VmHWM:"), report.valid)
"""


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def write_jsonl(path: Path, target_bytes: int, row_bytes: int, gz: bool) -> int:
    """Rows of about ``row_bytes`` until the text reaches ``target_bytes``; returns the rows."""
    opener = gzip.open if gz else open
    written = rows = 0
    filler = "lorem ipsum dolor sit amet " * (row_bytes // 27 + 1)
    with opener(path, "wt", encoding="utf-8") as handle:
        while True:
            row = {
                "prompt": f"q{rows} {filler[: row_bytes // 2]}",
                "chosen": f"a{rows}",
                "rejected": f"b{rows}",
            }
            line = json.dumps(row) + "\n"
            if written + len(line) > target_bytes:
                return rows
            handle.write(line)
            written += len(line)
            rows += 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upload_peak(pid: int, url: str, path: Path) -> dict[str, float]:
    idle = rss_mib(pid)
    samples = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mib(pid))
            time.sleep(0.01)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.monotonic()
    with path.open("rb") as handle:
        reply = httpx.post(url, files={"file": (path.name, handle)}, timeout=1800)
    elapsed = time.monotonic() - started
    done.set()
    thread.join()
    if reply.status_code != 201:
        raise RuntimeError(f"upload of {path.name} refused: {reply.status_code} {reply.text[:300]}")
    peak = max(samples)
    return {
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "rows": reply.json()["report"]["rows"],
        "idle_mib": round(idle, 1),
        "peak_mib": round(peak, 1),
        "delta_mib": round(peak - idle, 1),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each default cap to fill")
    args = parser.parse_args()
    caps = ApiOptions()
    jsonl_bytes = int(caps.max_upload_bytes * args.scale) - 64 * 1024
    inflated_bytes = int(caps.max_decompressed_bytes * args.scale) - 64 * 1024
    row_bytes = max(1000, 2 * inflated_bytes // int(caps.max_upload_rows * args.scale))  # half the row cap
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="alignscope-upload-bench-") as tmp:
        folder = Path(tmp)
        plain, packed = folder / "largest.jsonl", folder / "inflating.jsonl.gz"
        print(f"writing {jsonl_bytes} bytes of JSONL and a .gz of {inflated_bytes} bytes", file=sys.stderr)
        write_jsonl(plain, jsonl_bytes, 1000, gz=False)
        write_jsonl(packed, inflated_bytes, row_bytes, gz=True)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(REPO), "ALIGNSCOPE_DATA_DIR": str(folder / "data")}
        env["ALIGNSCOPE_MAX_UPLOAD_MB"] = str(caps.max_upload_bytes * args.scale / 2**20)
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "backend.api:create_app",
            "--port",
            str(port),
        ]
        server = subprocess.Popen([*command, "--log-level", "warning"], env=env, cwd=REPO)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/api/health", timeout=1).status_code < 500:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            ours = {name: upload_peak(server.pid, f"{url}/api/datasets", path) for name, path in
                    (("jsonl", plain), ("jsonl_gz", packed))}  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)
        peer_out = subprocess.run(
            [sys.executable, "-c", PEER, str(plain)],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        base, hwm = float(peer_out[0]), float(peer_out[1])
    peer = {
        "name": "read_rows: the whole-file validation the API ran before",
        "delta_mib": round(hwm - base, 1),
    }
    peak = max(result["peak_mib"] for result in ours.values())
    result = {
        "bench": "upload_memory",
        "scale": args.scale,
        "ours": ours,
        "peer": peer,
        "ratio": round(ours["jsonl"]["delta_mib"] / max(peer["delta_mib"], 1e-9), 3),
        "budget_mib": BUDGET_MIB,
        "api_peak_mib": peak,
        "meets_budget": peak < BUDGET_MIB,
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
