// Parse every ```mermaid block of the given Markdown files with the real Mermaid parser.
// Usage: node check.mjs FILE.md...   Prints one line per block that does not parse
// (`FILE:LINE: message`) and exits 1 if any; exits 0 with a count when all parse.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

// Mermaid sanitises labels with DOMPurify, which needs a DOM: give it jsdom's.
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

function blocks(text) {
  const out = [];
  const lines = text.split("\n");
  let start = -1;
  let body = [];
  lines.forEach((line, index) => {
    if (start < 0 && line.trim() === "```mermaid") {
      start = index + 1;
      body = [];
    } else if (start >= 0 && line.trim() === "```") {
      out.push({ line: start, source: body.join("\n") });
      start = -1;
    } else if (start >= 0) {
      body.push(line);
    }
  });
  if (start >= 0) out.push({ line: start, source: null });
  return out;
}

let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const block of blocks(readFileSync(file, "utf8"))) {
    checked += 1;
    if (block.source === null) {
      console.log(`${file}:${block.line}: unclosed mermaid block`);
      failures += 1;
      continue;
    }
    try {
      await mermaid.parse(block.source);
    } catch (error) {
      const message = String(error && error.message ? error.message : error).split("\n").join(" ");
      console.log(`${file}:${block.line}: ${message}`);
      failures += 1;
    }
  }
}
console.log(`${checked} mermaid blocks checked, ${failures} failed`);
process.exit(failures ? 1 : 0);
