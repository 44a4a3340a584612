#!/usr/bin/python3
"""Export tiny GPT-2 models in every layout and opset the gpt2 plugin supports.

Hugging Face transformers cannot be installed on the project's machines, so this script carries
its own PyTorch GPT-2, written with the same torch calls as transformers' modeling_gpt2 (Conv1D's
addmm over a flattened input, split/permute heads, the registered causal `bias` buffer,
torch.where with the mask value, the additive attention mask), because the exported graph is what
the fusions have to match. Two eras of that code:

  old (transformers ~4.5-4.20): the scores divided by a constant float(v.size(-1)) ** 0.5, the
      causal fill and the mask filter -10000;
  new (transformers 4.26, as in ../shared/models): the divisor computed from the value's shape
      (torch.full([], v.size(-1) ** 0.5)), fill and filter torch.finfo(float32).min.

Opsets 11 and 12 use the old code, 13 and above the new. Layouts:
  past      onnxruntime convert_to_onnx's: input_ids, position_ids, attention_mask, past_i
            [2, B, N, P, d]; outputs logits, present_i (torch.stack of key and value)
  fmask     the same with a float attention_mask (opsets 12 and 17)
  int32     the same with int32 input_ids, position_ids and attention_mask (convert_to_onnx's
            --use_int32_inputs: cast to int64 inside the graph; opsets 11 and 14)
  hf        Hugging Face's own exporter: input_ids, past_key_values.i.key/value [B, N, P, d],
            attention_mask; outputs logits, present.i.key/value
  nopast    input_ids only; logits
Each model gets PyTorch's outputs for batch 2, 3 new tokens, past 4, the second row left-padded
(its position ids derived from the mask), in the ONNX test-data layout.

Usage: tools/export_gpt2_variants.py OUT_DIR   (needs python3-torch and python3-onnx)
"""
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
from torch import nn

VOCAB, HIDDEN, LAYERS, HEADS, POSITIONS = 99, 32, 2, 4, 32
BATCH, SEQ, PAST = 2, 3, 4
OPSETS = [11, 12, 13, 14, 16, 17]


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):
    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Attention(nn.Module):
    def __init__(self, era):
        super().__init__()
        self.era, self.head_dim = era, HIDDEN // HEADS
        self.register_buffer("bias", torch.tril(torch.ones((POSITIONS, POSITIONS), dtype=torch.bool))
                             .view(1, 1, POSITIONS, POSITIONS))
        self.c_attn, self.c_proj = Conv1D(3 * HIDDEN, HIDDEN), Conv1D(HIDDEN, HIDDEN)

    def _split_heads(self, t):
        return t.view(t.size()[:-1] + (HEADS, self.head_dim)).permute(0, 2, 1, 3)

    def _merge_heads(self, t):
        t = t.permute(0, 2, 1, 3).contiguous()
        return t.view(t.size()[:-2] + (HEADS * self.head_dim,))

    def _attn(self, query, key, value, attention_mask):
        w = torch.matmul(query, key.transpose(-1, -2))
        if self.era == "old":
            w = w / (float(value.size(-1)) ** 0.5)
            fill = torch.tensor(-1e4)
        else:
            w = w / torch.full([], value.size(-1) ** 0.5, dtype=w.dtype)
            fill = torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype)
        query_length, key_length = query.size(-2), key.size(-2)
        causal_mask = self.bias[:, :, key_length - query_length:key_length, :key_length].to(torch.bool)
        w = torch.where(causal_mask, w.to(w.dtype), fill)
        if attention_mask is not None:
            w = w + attention_mask
        w = nn.functional.softmax(w, dim=-1).type(value.dtype)
        return torch.matmul(w, value)

    def forward(self, x, layer_past, attention_mask):
        query, key, value = self.c_attn(x).split(HIDDEN, dim=2)
        query, key, value = self._split_heads(query), self._split_heads(key), self._split_heads(value)
        if layer_past is not None:
            past_key, past_value = layer_past
            key = torch.cat((past_key, key), dim=-2)
            value = torch.cat((past_value, value), dim=-2)
        out = self.c_proj(self._merge_heads(self._attn(query, key, value, attention_mask)))
        return out, (key, value)


class Block(nn.Module):
    def __init__(self, era):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(HIDDEN, eps=1e-5), nn.LayerNorm(HIDDEN, eps=1e-5)
        self.attn = Attention(era)
        self.c_fc, self.c_proj = Conv1D(4 * HIDDEN, HIDDEN), Conv1D(HIDDEN, 4 * HIDDEN)

    def forward(self, h, layer_past, attention_mask):
        a, present = self.attn(self.ln_1(h), layer_past, attention_mask)
        h = a + h
        h = h + self.c_proj(gelu_new(self.c_fc(self.ln_2(h))))
        return h, present


class GPT2LMHeadModel(nn.Module):
    def __init__(self, era):
        super().__init__()
        self.era = era
        self.wte, self.wpe = nn.Embedding(VOCAB, HIDDEN), nn.Embedding(POSITIONS, HIDDEN)
        self.h = nn.ModuleList(Block(era) for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(HIDDEN, eps=1e-5)
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)

    def forward(self, input_ids, position_ids=None, attention_mask=None, past=None):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        batch_size = input_ids.shape[0]
        past_length = 0 if past is None else past[0][0].size(-2)
        if position_ids is not None:
            position_ids = position_ids.view(-1, input_shape[-1])
        else:
            position_ids = torch.arange(past_length, input_shape[-1] + past_length, dtype=torch.long)
            position_ids = position_ids.unsqueeze(0).view(-1, input_shape[-1])
        if attention_mask is not None:
            attention_mask = attention_mask.view(batch_size, -1)
            attention_mask = attention_mask[:, None, None, :]
            attention_mask = attention_mask.to(dtype=torch.float32)
            filt = -10000.0 if self.era == "old" else torch.finfo(torch.float32).min
            attention_mask = (1.0 - attention_mask) * filt
        h = self.wte(input_ids) + self.wpe(position_ids)
        presents = []
        for i, block in enumerate(self.h):
            h, present = block(h, None if past is None else past[i], attention_mask)
            presents.append(present)
        h = self.ln_f(h)
        h = h.view(input_shape + (h.size(-1),))
        return self.lm_head(h), presents


class ConvertToOnnxLayout(nn.Module):
    """onnxruntime's MyGPT2LMHeadModel: past_i stacked [2, B, N, P, d], present_i likewise."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids, attention_mask, *past):
        logits, presents = self.model(input_ids, position_ids, attention_mask, past)
        return (logits,) + tuple(torch.stack(p) for p in presents)


class Int32Layout(ConvertToOnnxLayout):
    """convert_to_onnx with int32 inputs: the model casts them back to int64 itself."""

    def forward(self, input_ids, position_ids, attention_mask, *past):
        return super().forward(input_ids.long(), position_ids.long(), attention_mask.long(), *past)


class HfLayout(nn.Module):
    """Hugging Face's exporter: separate key and value tensors, no position_ids input."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, *args):
        kv, attention_mask = args[:-1], args[-1]
        past = [(kv[2 * i], kv[2 * i + 1]) for i in range(LAYERS)]
        logits, presents = self.model(input_ids, None, attention_mask, past)
        out = [logits]
        for k, v in presents:
            out += [k, v]
        return tuple(out)


class NoPast(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return (self.model(input_ids)[0],)


def init_weights(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("ln_f"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)


def inputs(layout):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)
    total = PAST + SEQ
    mask = torch.ones(BATCH, total, dtype=torch.long)
    mask[1, :2] = 0  # left padding in the second row
    position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, PAST:]
    past = [torch.randn(2, BATCH, HEADS, PAST, HIDDEN // HEADS, generator=g) for _ in range(LAYERS)]
    if layout == "nopast":
        return ["input_ids"], [ids]
    if layout in ("past", "fmask", "int32"):
        m = mask.float() if layout == "fmask" else mask
        if layout == "int32":
            ids, position_ids, m = ids.int(), position_ids.int(), m.int()
        return (["input_ids", "position_ids", "attention_mask"] + [f"past_{i}" for i in range(LAYERS)],
                [ids, position_ids, m] + past)
    names, args = ["input_ids"], [ids]
    for i in range(LAYERS):
        names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        args += [past[i][0], past[i][1]]
    return names + ["attention_mask"], args + [mask]


def output_names(layout):
    if layout == "nopast":
        return ["logits"]
    if layout in ("past", "fmask", "int32"):
        return ["logits"] + [f"present_{i}" for i in range(LAYERS)]
    names = ["logits"]
    for i in range(LAYERS):
        names += [f"present.{i}.key", f"present.{i}.value"]
    return names


def dynamic_axes(in_names, out_names):
    axes = {}
    for n in in_names + out_names:
        if n.startswith("past_") and "." not in n:
            axes[n] = {1: "batch", 3: "past"}
        elif n.startswith("present_"):
            axes[n] = {1: "batch", 3: "total"}
        elif n.startswith("past_key_values"):
            axes[n] = {0: "batch", 2: "past"}
        elif n.startswith("present."):
            axes[n] = {0: "batch", 2: "total"}
        elif n == "attention_mask":
            axes[n] = {0: "batch", 1: "total"}
        else:
            axes[n] = {0: "batch", 1: "sequence"}
    return axes


def export(out_root, layout, opset):
    era = "old" if opset < 13 else "new"
    model = GPT2LMHeadModel(era)
    init_weights(model, seed=opset)
    wrapper = {"past": ConvertToOnnxLayout, "fmask": ConvertToOnnxLayout, "int32": Int32Layout,
               "hf": HfLayout, "nopast": NoPast}[layout](model).eval()
    in_names, args = inputs(layout)
    out_names = output_names(layout)
    name = f"gpt2{layout}_opset{opset}"
    d = os.path.join(out_root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    with torch.no_grad():
        outs = wrapper(*args)
        torch.onnx.export(wrapper, tuple(args), os.path.join(d, "model.onnx"), input_names=in_names,
                          output_names=out_names, dynamic_axes=dynamic_axes(in_names, out_names),
                          opset_version=opset, do_constant_folding=True)
    onnx.checker.check_model(onnx.load(os.path.join(d, "model.onnx")))
    for k, t in enumerate(args):
        p = numpy_helper.from_array(t.numpy(), in_names[k])
        open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb").write(p.SerializeToString())
    for k, t in enumerate(outs):
        p = numpy_helper.from_array(t.numpy().astype(np.float32), out_names[k])
        open(os.path.join(d, "test_data_set_0", f"output_{k}.pb"), "wb").write(p.SerializeToString())
    json.dump({"family": "gpt2", "layout": layout, "opset": opset, "era": era,
               "torch_version": torch.__version__, "layers": LAYERS, "hidden": HIDDEN,
               "heads": HEADS, "generator": "tools/export_gpt2_variants.py"},
              open(os.path.join(d, "config.json"), "w"), indent=1)
    return name


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for opset in OPSETS:
        extra = (("fmask",) if opset in (12, 17) else ()) + (("int32",) if opset in (11, 14) else ())
        for layout in ("past", "hf", "nopast") + extra:
            print(export(sys.argv[1], layout, opset), flush=True)


if __name__ == "__main__":
    main()
