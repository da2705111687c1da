"""Tokens/s of the bundled local model: raw llama-cpp-python streaming vs through LlamaCppProvider.

Run from the repository: `.venv/bin/python bench/local_model.py [--runs 5] [--max-tokens 128]`.
Both sides use the same loaded model, the same prompt and greedy decoding (so the same tokens),
interleaved run by run; the time of a run is from the request to its last chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from chatgate.providers.llama_cpp import LlamaCppConfig, LlamaCppProvider

PROMPT = "Write a long story about a cat who learns to fly."


async def provider_run(provider: LlamaCppProvider, body: dict[str, Any]) -> tuple[float, str, int]:
    start = time.perf_counter()
    parts, tokens = [], 0
    async for batch in provider.stream(body, "local"):
        for chunk in batch:
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif content := chunk["choices"][0]["delta"].get("content"):
                parts.append(content)
    return time.perf_counter() - start, "".join(parts), tokens


def raw_run(llm: Any, body: dict[str, Any]) -> tuple[float, str]:
    start = time.perf_counter()
    parts = []
    stream = llm.create_chat_completion(
        messages=body["messages"],
        max_tokens=body["max_tokens"],
        temperature=body["temperature"],
        stream=True,
    )
    for chunk in stream:
        if content := chunk["choices"][0]["delta"].get("content"):
            parts.append(content)
    return time.perf_counter() - start, "".join(parts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="n_threads (default: all CPUs)")
    args = parser.parse_args()

    provider = LlamaCppProvider("local", LlamaCppConfig(n_threads=args.threads))
    await provider.start()
    llm = provider._free[0]  # the Llama object the provider uses, driven directly...
    loop = asyncio.get_running_loop()
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "stream_options": {"include_usage": True},
    }

    async def raw() -> tuple[float, str]:
        # ...from the provider's own worker thread, so both sides share the thread (and its
        # OpenMP team); the provider is idle meanwhile.
        await asyncio.sleep(0.05)  # let the last provider answer hand the model back
        return await loop.run_in_executor(provider._workers, raw_run, llm, body)

    await raw()  # warm-up: page cache, prompt cache, thread teams
    await provider_run(provider, body)

    raw_tps, prov_tps, ratios = [], [], []
    for i in range(args.runs):
        if i % 2:  # alternate who goes first, so a drift in machine load favours neither
            prov_s, prov_text, tokens = await provider_run(provider, body)
            raw_s, raw_text = await raw()
        else:
            raw_s, raw_text = await raw()
            prov_s, prov_text, tokens = await provider_run(provider, body)
        if raw_text != prov_text:
            raise SystemExit("raw and provider output differ: the comparison is not like for like")
        raw_tps.append(tokens / raw_s)
        prov_tps.append(tokens / prov_s)
        ratios.append(raw_s / prov_s)
        print(f"{tokens} tokens   raw {raw_tps[-1]:6.1f} tok/s   provider {prov_tps[-1]:6.1f}")
    await provider.close()

    # Other processes on a small shared machine disturb single runs: the median of the ratios
    # of back-to-back pairs is the robust figure; the best runs show the undisturbed speeds.
    median, best = statistics.median, max
    print(f"median: raw {median(raw_tps):.1f} tok/s, provider {median(prov_tps):.1f} tok/s")
    print(f"best:   raw {best(raw_tps):.1f} tok/s, provider {best(prov_tps):.1f} tok/s")
    print(
        f"provider/raw: median of pairs {median(ratios):.3f}, "
        f"best/best {best(prov_tps) / best(raw_tps):.3f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
