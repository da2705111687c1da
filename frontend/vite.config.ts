/// <reference types="vitest/config" />
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build lands in the Python package, which serves it at / (src/chatgate/api/ui.py).
const outDir = fileURLToPath(new URL("../src/chatgate/static", import.meta.url));

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    // The page runs under a strict CSP (default-src 'self'): no data: fonts or inline assets.
    assetsInlineLimit: 0,
    // No module-preload polyfill: it is unneeded in current browsers and keeps the page free of
    // anything that could need an inline script.
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 1500,
  },
  server: {
    proxy: {
      "/v1": "http://127.0.0.1:8000",
      "/api": { target: "http://127.0.0.1:8000", ws: true },
    },
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
