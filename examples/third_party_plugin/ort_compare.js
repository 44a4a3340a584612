#!/usr/bin/env node
// The ONNX Runtime side of check_example.cmake, around tools/ort/run.js (which runs one model):
//
//   node ort_compare.js inputs DIR            DIR/inputs.json + one .bin per input: BERT inputs
//                                             (input_ids, attention_mask, token_type_ids), batch 2,
//                                             sequence 8, the second sample padded; deterministic
//   node ort_compare.js compare A B TOL       A/outputs.json and B/outputs.json (run.js's output)
//                                             have the same outputs, shapes and types, and every
//                                             float element within TOL; prints the largest diff
//
// Exit 0 when all is well; otherwise one line on stderr and exit 1.
'use strict';
const fs = require('fs');
const path = require('path');

function writeInputs(dir) {
  const batch = 2, seq = 8, vocab = 1000;
  let state = 12345;  // a fixed LCG: the same inputs on every run
  const next = () => (state = (state * 1103515245 + 12345) % 2147483648);
  const tensors = {
    input_ids: (b, s) => BigInt(next() % vocab),
    attention_mask: (b, s) => BigInt(b === 1 && s >= seq - 3 ? 0 : 1),  // sample 1: 3 pads
    token_type_ids: (b, s) => BigInt(s >= seq / 2 ? 1 : 0),
  };
  fs.mkdirSync(dir, { recursive: true });
  const specs = Object.entries(tensors).map(([name, value], k) => {
    const data = new BigInt64Array(batch * seq);
    for (let b = 0; b < batch; ++b)
      for (let s = 0; s < seq; ++s) data[b * seq + s] = value(b, s);
    const file = `in${k}.bin`;
    fs.writeFileSync(path.join(dir, file), Buffer.from(data.buffer));
    return { name, type: 'int64', dims: [batch, seq], file };
  });
  fs.writeFileSync(path.join(dir, 'inputs.json'), JSON.stringify(specs));
}

function readOutputs(dir) {
  const specs = JSON.parse(fs.readFileSync(path.join(dir, 'outputs.json'), 'utf8'));
  return specs.map((s) => {
    if (s.type !== 'float32') throw new Error(`${dir}: output '${s.name}' is ${s.type}, not float32`);
    const buf = fs.readFileSync(path.join(dir, s.file));
    return { ...s, data: new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4) };
  });
}

function compare(dirA, dirB, tol) {
  const a = readOutputs(dirA), b = readOutputs(dirB);
  if (a.length !== b.length) throw new Error(`${a.length} outputs before, ${b.length} after`);
  let worst = { diff: 0, where: 'nowhere' };
  a.forEach((x, k) => {
    const y = b[k];
    if (x.name !== y.name || JSON.stringify(x.dims) !== JSON.stringify(y.dims))
      throw new Error(`output ${k}: '${x.name}' ${JSON.stringify(x.dims)} before, ` +
                      `'${y.name}' ${JSON.stringify(y.dims)} after`);
    for (let i = 0; i < x.data.length; ++i) {
      const p = x.data[i], q = y.data[i];
      // NaN on both sides is the same result; NaN on one side is the worst difference there is.
      const d = Number.isNaN(p) && Number.isNaN(q) ? 0 : Math.abs(p - q);
      const bad = Number.isNaN(d) ? Infinity : d;
      if (bad > worst.diff) worst = { diff: bad, where: `output '${x.name}' element ${i}` };
    }
  });
  const line = `max abs difference ${worst.diff} at ${worst.where} (tolerance ${tol})`;
  if (worst.diff > tol) throw new Error(line);
  process.stdout.write(line + '\n');
}

try {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'inputs' && args.length === 1) writeInputs(args[0]);
  else if (cmd === 'compare' && args.length === 3 && Number(args[2]) >= 0)
    compare(args[0], args[1], Number(args[2]));
  else throw new Error('usage: ort_compare.js inputs DIR | compare DIR_A DIR_B TOL');
} catch (e) {
  process.stderr.write(String(e && e.message ? e.message : e).split('\n')[0] + '\n');
  process.exit(1);
}
