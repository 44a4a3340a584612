#!/usr/bin/env node
// Runs one ONNX model in ONNX Runtime (CPU) — tfhost's reference engine for compatibility tests.
//
//   node tools/ort/run.js MODEL INPUTS.json OUT_DIR [--opt disabled|basic|extended|all]
//
// INPUTS.json: [{"name": "input_ids", "type": "int64", "dims": [2, 8], "file": "in0.bin"}, ...]
// with each file holding the raw little-endian elements (file paths relative to INPUTS.json).
// Writes OUT_DIR/outputs.json in the same format (graph-output order) plus one .bin per output.
// Exit 0 on success; on failure prints ONNX Runtime's message on one line and exits 1.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array,
  int16: Int16Array, uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array,
  int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array, float16: Uint16Array,
};

function readTensor(spec, base) {
  const Arr = ARRAYS[spec.type];
  if (!Arr) throw new Error(`input '${spec.name}': unsupported type ${spec.type}`);
  const buf = fs.readFileSync(path.resolve(base, spec.file));
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  const data = new Arr(copy.buffer, 0, buf.length / Arr.BYTES_PER_ELEMENT);
  return new ort.Tensor(spec.type, data, spec.dims);
}

async function main() {
  const args = process.argv.slice(2);
  let opt = 'disabled';
  const i = args.indexOf('--opt');
  if (i >= 0) { opt = args[i + 1]; args.splice(i, 2); }
  if (args.length !== 3) throw new Error('usage: run.js MODEL INPUTS.json OUT_DIR [--opt LEVEL]');
  const [model, inputsJson, outDir] = args;
  const specs = JSON.parse(fs.readFileSync(inputsJson, 'utf8'));
  const feeds = {};
  for (const s of specs) feeds[s.name] = readTensor(s, path.dirname(inputsJson));
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: opt, intraOpNumThreads: 1, interOpNumThreads: 1,
  });
  const results = await session.run(feeds);
  fs.mkdirSync(outDir, { recursive: true });
  const out = session.outputNames.map((name, k) => {
    const t = results[name];
    const file = `out${k}.bin`;
    const d = t.data;
    fs.writeFileSync(path.join(outDir, file), Buffer.from(d.buffer, d.byteOffset, d.byteLength));
    return { name, type: t.type, dims: t.dims.map(Number), file };
  });
  fs.writeFileSync(path.join(outDir, 'outputs.json'), JSON.stringify(out));
}

main().catch((e) => {
  process.stderr.write(String(e && e.message ? e.message : e).split('\n')[0] + '\n');
  process.exit(1);
});
