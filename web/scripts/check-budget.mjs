// The web console's size budget, checked by the build after Vite: the JavaScript a first
// visit loads (the scripts index.html names, and the modules they preload) may weigh at most
// 150 KB gzipped. Prints what it weighs; exits 1 over budget.
//
//   node web/scripts/check-budget.mjs <build directory> [budget in KB, default 150]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const [dir, budgetArg] = process.argv.slice(2);
if (!dir) {
  console.error("usage: check-budget.mjs <build directory> [budget KB]");
  process.exit(2);
}
const budget = Number(budgetArg ?? 150) * 1024;
const html = readFileSync(join(dir, "index.html"), "utf8");
const scripts = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*rel="modulepreload"[^>]*\shref)="([^"]+\.js)"/g)].map((m) => m[1]);
if (scripts.length === 0) {
  console.error("check-budget: index.html names no script");
  process.exit(1);
}
let total = 0;
for (const src of scripts) {
  const bytes = gzipSync(readFileSync(join(dir, src.replace(/^\//, ""))), { level: 9 }).length;
  total += bytes;
}
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
if (total > budget) {
  console.error(`check-budget: the first visit loads ${kb(total)} of JavaScript gzipped (${scripts.length} files): over the ${kb(budget)} budget`);
  process.exit(1);
}
console.log(`check-budget: the first visit loads ${kb(total)} of JavaScript gzipped (${scripts.length} files; budget ${kb(budget)})`);
