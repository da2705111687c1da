import { describe, expect, it } from "vitest";
import type { Pending } from "./Attachments";
import { blocker } from "./Composer";
import { translate } from "../i18n";
import type { MessageKey } from "../i18n/messages";

const t = (key: MessageKey, vars?: Record<string, string | number>) => translate("en", key, vars);
const stored = { id: "file_1", name: "x", mime: "image/png", kind: "image" as const, size: 1, status: "ready" as const, pages: null, error: null };
const image: Pending = { key: "k", name: "shot.png", kind: "image", preview: null, stored, error: null };
const known = [{ id: "gpt-4o", vision: true }, { id: "local", vision: false }, { id: "other" }];

describe("what keeps a message from going", () => {
  it("refuses images for a model that cannot see them, naming it", () => {
    expect(blocker(t, [image], ["local"], known)).toBe("local cannot see images: remove the image or choose a model that can.");
    expect(blocker(t, [image], ["gpt-4o", "local"], known)).toMatch(/^local cannot see images/); // side by side
    expect(blocker(t, [image], ["gpt-4o"], known)).toBeNull();
    expect(blocker(t, [image], ["other"], known)).toBeNull(); // unknown: the server decides
    expect(blocker(t, [{ ...image, kind: "document" }], ["local"], known)).toBeNull();
  });

  it("waits for uploads; a failed one does not hold the message", () => {
    expect(blocker(t, [{ ...image, stored: null }], ["gpt-4o"], known)).toBe("Wait until the files are uploaded.");
    expect(blocker(t, [{ ...image, stored: null, error: "413" }], ["gpt-4o"], known)).toBeNull();
  });
});
