#!/usr/bin/env node
// Latency of one model in ONNX Runtime (CPU), the peer of `tfhost perf` in bench/runtime_vs_ort.sh.
//
//   node bench/ort_perf.js MODEL INPUTS.json [--threads N] [--samples N] [--warmup N]
//                          [--opt disabled|basic|extended|all]
//
// INPUTS.json is what `tfhost perf --save_inputs DIR` writes (tools/ort/run.js's format), so both
// engines run the same bytes. Prints "Latency mean/P50/P90: X ms" lines like tfhost perf.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tools', 'ort', 'node_modules', 'onnxruntime-node'));

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int32: Int32Array, int64: BigInt64Array, bool: Uint8Array, float16: Uint16Array,
};

function option(args, name, dflt) {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

function percentile(sorted, p) {
  const pos = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

async function main() {
  const args = process.argv.slice(2);
  const threads = Number(option(args, '--threads', '0'));
  const samples = Number(option(args, '--samples', '20'));
  const warmup = Number(option(args, '--warmup', '3'));
  const opt = option(args, '--opt', 'disabled');
  if (args.length !== 2) throw new Error('usage: ort_perf.js MODEL INPUTS.json [options]');
  const [model, inputsJson] = args;
  const feeds = {};
  for (const s of JSON.parse(fs.readFileSync(inputsJson, 'utf8'))) {
    const buf = fs.readFileSync(path.resolve(path.dirname(inputsJson), s.file));
    const copy = new Uint8Array(buf.length);
    copy.set(buf);
    const Arr = ARRAYS[s.type];
    feeds[s.name] = new ort.Tensor(s.type, new Arr(copy.buffer, 0, buf.length / Arr.BYTES_PER_ELEMENT), s.dims);
  }
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: opt, intraOpNumThreads: threads, interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  for (let i = 0; i < warmup; ++i) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < samples; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...ms].sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / ms.length;
  console.log(`Latency mean: ${mean.toFixed(3)} ms`);
  console.log(`Latency P50: ${percentile(sorted, 50).toFixed(3)} ms`);
  console.log(`Latency P90: ${percentile(sorted, 90).toFixed(3)} ms`);
}

main().catch((e) => {
  process.stderr.write(String(e && e.message ? e.message : e).split('\n')[0] + '\n');
  process.exit(1);
});
