// The web console's build: static files only (index.html and hashed assets), served by
// `torii server` under a strict Content-Security-Policy (no inline script or style), so
// nothing is inlined into the page and no module-preload polyfill is injected.
import { defineConfig } from "vite";

export default defineConfig({
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    cssCodeSplit: false,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
