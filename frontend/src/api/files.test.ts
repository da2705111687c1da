import { afterEach, describe, expect, it, vi } from "vitest";
import { MAX_FILE_BYTES, MAX_IMAGE_BYTES, checkFile, contentUrl, fileType, getFile, passage, toCitation, toStoredFile, uploadFile } from "./files";

const file = (name: string, type: string, size = 10) => ({ name, type, size });

describe("fileType and checkFile (before any upload)", () => {
  it.each([
    ["shot.png", "image/png", "image", "image/png"],
    ["photo.JPG", "image/jpeg", "image", "image/jpeg"],
    ["paper.pdf", "application/pdf", "document", "application/pdf"],
    ["paper.pdf", "", "document", "application/pdf"],
    ["notes.md", "", "document", "application/octet-stream"],
    ["main.py", "text/x-python", "document", "text/x-python"],
    ["contract.docx", "", "document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
  ])("%s (%s) is a %s sent as %s", (name, type, kind, mime) => {
    expect(fileType(file(name, type))).toEqual({ kind, mime });
  });

  it.each([
    ["logo.svg", "image/svg+xml"],
    ["movie.mp4", "video/mp4"],
    ["tool.exe", "application/x-msdownload"],
  ])("%s is refused by type", (name, type) => {
    expect(checkFile(file(name, type), 0)).toEqual({ problem: "type", name });
  });

  it("refuses an image over 10 MiB and a document over 20 MiB, by size", () => {
    expect(checkFile(file("a.png", "image/png", MAX_IMAGE_BYTES), 0)).toBeNull();
    expect(checkFile(file("a.png", "image/png", MAX_IMAGE_BYTES + 1), 0)).toEqual({ problem: "size", name: "a.png", limit: MAX_IMAGE_BYTES });
    expect(checkFile(file("a.pdf", "application/pdf", MAX_IMAGE_BYTES + 1), 0)).toBeNull();
    expect(checkFile(file("a.pdf", "application/pdf", MAX_FILE_BYTES + 1), 0)).toMatchObject({ problem: "size", limit: MAX_FILE_BYTES });
  });

  it("refuses an eleventh file", () => {
    expect(checkFile(file("a.png", "image/png"), 10)).toEqual({ problem: "count", limit: 10 });
  });
});

describe("the /api/files contract", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("uploads the raw bytes with the name in the query and the type as Content-Type", async () => {
    const calls: [string, RequestInit][] = [];
    vi.stubGlobal("fetch", (url: string, init: RequestInit) => {
      calls.push([url, init]);
      const body = { id: "file_abc", name: "плакат 1.png", mime: "image/png", size: 3, kind: "image", status: "ready", pages: null, error: null };
      return Promise.resolve(new Response(JSON.stringify(body), { status: 201, headers: { "content-type": "application/json" } }));
    });
    const blob = new File([new Uint8Array([1, 2, 3])], "плакат 1.png", { type: "image/png" });
    const stored = await uploadFile(blob);
    expect(stored).toMatchObject({ id: "file_abc", kind: "image", status: "ready", pages: null });
    const [url, init] = calls[0] ?? ["", {}];
    expect(url).toBe(`/api/files?name=${encodeURIComponent("плакат 1.png")}`);
    expect(init.method).toBe("POST");
    expect(init.body).toBe(blob); // not multipart
    expect((init.headers as Record<string, string>)["Content-Type"]).toBe("image/png");
  });

  it("a refused upload is the server's message", async () => {
    vi.stubGlobal("fetch", () =>
      Promise.resolve(new Response(JSON.stringify({ error: { message: "Over your 500 MiB quota.", code: "quota_exceeded" } }), { status: 413 })),
    );
    await expect(uploadFile(new File(["x"], "a.txt", { type: "text/plain" }))).rejects.toThrow("Over your 500 MiB quota.");
  });

  it("reads a passage and maps files and citations", async () => {
    vi.stubGlobal("fetch", (url: string) => {
      expect(url).toBe("/api/files/file_x/passages/3");
      return Promise.resolve(new Response(JSON.stringify({ file_id: "file_x", name: "a.pdf", page: 3, n: 3, text: "The fact." })));
    });
    expect(await passage("file_x", 3)).toEqual({ fileId: "file_x", name: "a.pdf", page: 3, n: 3, text: "The fact." });
    expect(toStoredFile({ id: "f", status: "indexing", kind: "document", pages: 12 })).toMatchObject({ status: "indexing", pages: 12, kind: "document" });
    expect(toCitation({ file_id: "f", name: "b", page: null, n: 0, text: "t" }).page).toBeNull();
    expect(contentUrl("file_a/b")).toBe("/api/files/file_a%2Fb/content");
  });

  it("re-reads a file's state; a gone file is null, another failure throws", async () => {
    const answers = [
      new Response(JSON.stringify({ id: "file_d", kind: "document", status: "ready", pages: 6 }), { status: 200 }),
      new Response(JSON.stringify({ error: { message: "File not found.", code: "file_not_found" } }), { status: 404 }),
      new Response(JSON.stringify({ error: { message: "Database unavailable." } }), { status: 503 }),
    ];
    const urls: string[] = [];
    vi.stubGlobal("fetch", (url: string) => {
      urls.push(url);
      return Promise.resolve(answers.shift());
    });
    expect(await getFile("file_d")).toMatchObject({ id: "file_d", status: "ready", pages: 6 });
    expect(await getFile("file_d")).toBeNull();
    await expect(getFile("file_d")).rejects.toThrow("Database unavailable.");
    expect(urls).toEqual(["/api/files/file_d", "/api/files/file_d", "/api/files/file_d"]);
  });
});
