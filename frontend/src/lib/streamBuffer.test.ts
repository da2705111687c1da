import { describe, expect, it } from "vitest";
import { StreamBuffer } from "./streamBuffer";

function manual() {
  const queue: (() => void)[] = [];
  let now = 0;
  const buffer = new StreamBuffer(
    (cb) => queue.push(cb),
    () => now,
  );
  return {
    buffer,
    frame: (advance = 16) => {
      now += advance;
      const run = queue.splice(0);
      for (const cb of run) cb();
    },
    pending: () => queue.length,
  };
}

describe("StreamBuffer", () => {
  it("notifies at most once per frame however many tokens arrive", () => {
    const { buffer, frame } = manual();
    let calls = 0;
    buffer.subscribe(() => calls++);
    for (let i = 0; i < 1000; i++) buffer.content(`t${i} `);
    expect(calls).toBe(0);
    frame();
    expect(calls).toBe(1);
    expect(buffer.getSnapshot().content.startsWith("t0 t1 ")).toBe(true);
    expect(buffer.getSnapshot().content.endsWith("t999 ")).toBe(true);
    frame();
    expect(calls).toBe(1); // nothing new, no notification
  });

  it("moves from waiting to reasoning to answer", () => {
    const { buffer, frame } = manual();
    expect(buffer.getSnapshot().phase).toBe("waiting");
    buffer.reasoning("hmm");
    frame();
    expect(buffer.getSnapshot().phase).toBe("reasoning");
    buffer.content("Hi");
    frame();
    expect(buffer.getSnapshot()).toMatchObject({ phase: "answer", reasoning: "hmm", content: "Hi" });
  });

  it("keeps snapshots immutable and versioned", () => {
    const { buffer, frame } = manual();
    buffer.content("a");
    frame();
    const first = buffer.getSnapshot();
    buffer.content("b");
    frame();
    expect(first.content).toBe("a");
    expect(buffer.getSnapshot().version).toBe(first.version + 1);
  });

  it("spaces flushes out when rendering is slow", () => {
    const { buffer, frame } = manual();
    let calls = 0;
    buffer.subscribe(() => calls++);
    buffer.content("a");
    frame();
    buffer.setRenderCost(40); // a render took 40 ms: flush at most every 80 ms
    buffer.content("b");
    frame(16);
    frame(16);
    expect(calls).toBe(1);
    frame(60);
    expect(calls).toBe(2);
  });

  it("close() flushes and ignores late tokens", () => {
    const { buffer } = manual();
    buffer.content("done");
    expect(buffer.close().content).toBe("done");
    buffer.content("late");
    expect(buffer.flush().content).toBe("done");
  });

  it("replace() swaps the text (a resumed generation's snapshot)", () => {
    const { buffer, frame } = manual();
    buffer.content("old");
    frame();
    buffer.replace("new text", "why");
    frame();
    expect(buffer.getSnapshot()).toMatchObject({ content: "new text", reasoning: "why", phase: "answer" });
  });
});
