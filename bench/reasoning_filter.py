"""Micro-benchmark: the <think> filter's cost per chunk (issue 3 target: under 5 µs per typical
chunk). Typical chunks are a few tokens of text; the run mixes reasoning, tags split across
chunks and plain answer text, in the default `separate` mode.

    .venv/bin/python bench/reasoning_filter.py [--chunks 200000]
"""

from __future__ import annotations

import argparse
import time

from chatgate.gateway.reasoning import StreamFilter


def make_stream(n: int) -> list[list[dict[str, object]]]:
    words = ["Let", " me", " think", " about", " it", ".", " The", " answer", " is", " 42", "."]
    pieces = ["<thi", "nk>", *words * 3, "</th", "ink>\n\n", *words * 6]
    chunks = []
    for i in range(n):
        text = pieces[i % len(pieces)]
        delta = {"content": text} if i % len(pieces) else {"role": "assistant", "content": text}
        chunks.append(
            [
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                }
            ]
        )
    return chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    stream = make_stream(args.chunks)
    results = []
    for mode in ("separate", "strip", "keep"):
        best = float("inf")
        for _ in range(args.repeats):
            filt = StreamFilter(mode)  # type: ignore[arg-type]
            start = time.perf_counter()
            for batch in stream:
                filt.batch(batch)
            best = min(best, time.perf_counter() - start)
        results.append((mode, best / args.chunks * 1e6))
    for mode, us in results:
        print(f"{mode:>9}: {us:.2f} µs per chunk (best of {args.repeats}, {args.chunks} chunks)")


if __name__ == "__main__":
    main()
