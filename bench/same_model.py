#!/usr/bin/env python3
"""Checks that two ONNX models are the same model: same nodes in the same order (op, domain,
inputs, outputs, attributes, names), same initializer bytes (wherever they are stored: raw,
typed fields or external data), same inputs/outputs, opset imports and metadata.

  /usr/bin/python3 bench/same_model.py A.onnx B.onnx      exit 0 = same; 1 = differs (says where)

Needs python3-onnx (Debian). Used by bench/ir_roundtrip.sh.
"""
import sys
import onnx
from onnx import numpy_helper


def fail(msg):
    print("differ: " + msg)
    sys.exit(1)


def main(a_path, b_path):
    a, b = onnx.load(a_path), onnx.load(b_path)
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"):
        if getattr(a, field) != getattr(b, field):
            fail(field)
    if [(o.domain, o.version) for o in a.opset_import] != [(o.domain, o.version) for o in b.opset_import]:
        fail("opset_import")
    if [(p.key, p.value) for p in a.metadata_props] != [(p.key, p.value) for p in b.metadata_props]:
        fail("metadata_props")
    ga, gb = a.graph, b.graph
    if len(ga.node) != len(gb.node):
        fail(f"node count {len(ga.node)} vs {len(gb.node)}")
    for i, (x, y) in enumerate(zip(ga.node, gb.node)):
        if x.SerializeToString(deterministic=True) != y.SerializeToString(deterministic=True):
            fail(f"node {i} ('{x.name}')")
    for what in ("input", "output", "value_info"):
        xs, ys = getattr(ga, what), getattr(gb, what)
        if [v.SerializeToString(deterministic=True) for v in xs] != [v.SerializeToString(deterministic=True) for v in ys]:
            fail(f"graph {what}")
    if [t.name for t in ga.initializer] != [t.name for t in gb.initializer]:
        fail("initializer names/order")
    for x, y in zip(ga.initializer, gb.initializer):
        ax, ay = numpy_helper.to_array(x), numpy_helper.to_array(y)
        if ax.dtype != ay.dtype or ax.shape != ay.shape or ax.tobytes() != ay.tobytes():
            fail(f"initializer '{x.name}' bytes")
    print(f"same: {len(ga.node)} nodes, {len(ga.initializer)} initializers")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
