// package-lock.json must name no addresses (no "resolved" download URLs, no funding links):
// installs come from the configured npm registry by name and integrity only.
// `node scripts/check-lock.mjs --fix` drops funding links, which `npm install` may add back.
import { readFileSync, writeFileSync } from "node:fs";

const path = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(path, "utf8"));
const fix = process.argv.includes("--fix");
const bad = [];
for (const [name, entry] of Object.entries(lock.packages ?? {})) {
  if (entry.funding !== undefined && fix) delete entry.funding;
  for (const [key, value] of Object.entries(entry)) {
    const text = JSON.stringify(value);
    if (/https?:\/\//.test(text)) bad.push(`${name || "(root)"}: ${key}`);
  }
}
if (fix) writeFileSync(path, JSON.stringify(lock, null, 2) + "\n");
if (bad.length) {
  console.error(`package-lock.json names addresses:\n  ${bad.join("\n  ")}`);
  console.error("Run: node scripts/check-lock.mjs --fix (and npm config set omit-lockfile-registry-resolved true)");
  process.exit(1);
}
console.log("package-lock.json: no addresses");
