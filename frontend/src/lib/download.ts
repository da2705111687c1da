/** Save text as a file: a Blob behind a temporary link (no server round trip, CSP-safe). */

import type { ExportFile } from "../api/types";

export function download(file: ExportFile): void {
  const url = URL.createObjectURL(new Blob([file.text], { type: file.mimeType }));
  const a = document.createElement("a");
  a.href = url;
  a.download = file.filename;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  // The browser has the data once the download starts; free it a little later.
  setTimeout(() => {
    URL.revokeObjectURL(url);
  }, 10_000);
}
