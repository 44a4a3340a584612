#!/usr/bin/python3
"""Export tiny BERT, DistilBERT, RoBERTa and ALBERT models at every opset the bert plugin supports.

Hugging Face transformers cannot be installed on the project's machines, so this script carries
its own PyTorch modules that compute what transformers' modeling code computes, written the same
way (the same torch calls in the same order), because the exported graph is what the fusions have
to match. Three eras of that code are reproduced:

  old (transformers ~4.5-4.20): additive mask (1 - mask) * -10000, DistilBERT position ids from
      torch.arange, DistilBERT's masked_fill with -inf;
  new (transformers 4.26, as in ../shared/models): mask filter value torch.finfo(float32).min,
      position ids sliced from a registered buffer;
  sdpa (transformers >= 4.41 with attn_implementation="sdpa", exported by torch 2.x): the 4-D
      mask of _prepare_4d_attention_mask_for_sdpa (Expand, Sub, masked_fill to the float32
      minimum) and F.scaled_dot_product_attention written out the way torch 2.x's ONNX symbolic
      for it (opset 14+) writes it: scale = 1/sqrt(Shape(q)[-1]), q and K^T each multiplied by
      sqrt(scale), K transposed once more. torch 1.13 has no such symbolic, so the same ops are
      spelled out here.

Opsets 11 and 12 are exported with the old code, 13 and above with the new, each with dynamic
batch/sequence axes and with static shapes (batch 2, sequence 8); opsets 14 and 17 also with the
sdpa code (folders ending in _sdpa). Every model gets PyTorch's
outputs for one right-padded batch in the ONNX test-data layout, so `tfhost check DIR` compares
against PyTorch. Weights are random (seeded); this is a test-data generator, not a model zoo.

Usage: tools/export_bert_variants.py OUT_DIR   (needs python3-torch and python3-onnx)
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

VOCAB, HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POS, EMBED = 99, 32, 2, 4, 37, 40, 16
EPS = 1e-12
BATCH, SEQ = 2, 8
OPSETS = [11, 12, 13, 14, 16, 17]


def mask_value(era):
    return -10000.0 if era == "old" else torch.finfo(torch.float32).min


def sdpa_mask(mask):
    """_prepare_4d_attention_mask_for_sdpa -> _expand_mask (transformers >= 4.36)."""
    bsz, src_len = mask.size()
    expanded = mask[:, None, None, :].expand(bsz, 1, src_len, src_len).to(torch.float32)
    inverted = 1.0 - expanded
    return inverted.masked_fill(inverted.to(torch.bool), torch.finfo(torch.float32).min)


def sdpa(q, k, v, mask):
    """F.scaled_dot_product_attention(q, k, v, attn_mask=mask) as torch 2.x exports it."""
    d = torch._shape_as_tensor(q)[-1:]
    scale = torch.div(torch.tensor([1.0]), torch.sqrt(d.to(torch.float32)))
    kt = k.transpose(-2, -1)
    scores = torch.matmul(q * torch.sqrt(scale), kt * torch.sqrt(scale))
    return torch.matmul(torch.softmax(scores + mask, dim=-1), v)


def extended_mask(attention_mask, era):
    if era == "sdpa":
        return sdpa_mask(attention_mask)
    ext = attention_mask[:, None, None, :]
    ext = ext.to(dtype=torch.float32)
    return (1.0 - ext) * mask_value(era)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class SelfAttention(nn.Module):
    """BertSelfAttention / AlbertAttention's scores part."""

    def __init__(self, era):
        super().__init__()
        self.era, self.h, self.d = era, HEADS, HIDDEN // HEADS
        self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.h, self.d)
        return x.view(new_x_shape).permute(0, 2, 1, 3)

    def scores(self, hidden, mask):
        mixed_query_layer = self.query(hidden)
        key_layer = self.transpose_for_scores(self.key(hidden))
        value_layer = self.transpose_for_scores(self.value(hidden))
        query_layer = self.transpose_for_scores(mixed_query_layer)
        if self.era == "sdpa":
            return sdpa(query_layer, key_layer, value_layer, mask)
        attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        attention_scores = attention_scores / math.sqrt(self.d)
        attention_scores = attention_scores + mask
        probs = nn.functional.softmax(attention_scores, dim=-1)
        return torch.matmul(probs, value_layer)

    def forward(self, hidden, mask):
        context = self.scores(hidden, mask).permute(0, 2, 1, 3).contiguous()
        new_context_layer_shape = context.size()[:-2] + (HIDDEN,)
        return context.view(new_context_layer_shape)


class BertLayer(nn.Module):
    def __init__(self, era):
        super().__init__()
        self.self = SelfAttention(era)
        self.attn_dense, self.attn_ln = nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN, eps=EPS)
        self.intermediate = nn.Linear(HIDDEN, INTERMEDIATE)
        self.out_dense, self.out_ln = nn.Linear(INTERMEDIATE, HIDDEN), nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, x, mask):
        a = self.attn_ln(self.attn_dense(self.self(x, mask)) + x)
        i = nn.functional.gelu(self.intermediate(a))
        return self.out_ln(self.out_dense(i) + a)


class BertModel(nn.Module):
    """BertModel (roberta=True: RobertaModel, position ids from the input tokens)."""

    def __init__(self, era, roberta=False):
        super().__init__()
        self.era, self.roberta, self.pad = era, roberta, 1 if roberta else 0
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN, padding_idx=self.pad)
        self.position_embeddings = nn.Embedding(MAX_POS, HIDDEN, padding_idx=self.pad if roberta else None)
        self.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.register_buffer("position_ids", torch.arange(MAX_POS).expand((1, -1)))
        self.register_buffer("token_type_ids", torch.zeros((1, MAX_POS), dtype=torch.long))
        self.layers = nn.ModuleList(BertLayer(era) for _ in range(LAYERS))
        self.pooler = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        seq_length = input_ids.size()[1]
        if self.roberta:
            m = input_ids.ne(self.pad).int()
            incremental_indices = (torch.cumsum(m, dim=1).type_as(m) + 0) * m
            position_ids = incremental_indices.long() + self.pad
        else:
            position_ids = self.position_ids[:, 0:seq_length]
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :seq_length].expand(input_ids.size()[0], seq_length)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings += self.position_embeddings(position_ids)
        x = self.LayerNorm(embeddings)
        mask = extended_mask(attention_mask, self.era)
        for layer in self.layers:
            x = layer(x, mask)
        return x, torch.tanh(self.pooler(x[:, 0]))


class DistilBertModel(nn.Module):
    def __init__(self, era):
        super().__init__()
        self.era = era
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        self.position_embeddings = nn.Embedding(MAX_POS, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.register_buffer("position_ids", torch.arange(MAX_POS).expand((1, -1)))
        self.q_lin, self.k_lin, self.v_lin, self.out_lin = (
            nn.ModuleList(nn.Linear(HIDDEN, HIDDEN) for _ in range(LAYERS)) for _ in range(4))
        self.sa_ln = nn.ModuleList(nn.LayerNorm(HIDDEN, eps=EPS) for _ in range(LAYERS))
        self.lin1 = nn.ModuleList(nn.Linear(HIDDEN, INTERMEDIATE) for _ in range(LAYERS))
        self.lin2 = nn.ModuleList(nn.Linear(INTERMEDIATE, HIDDEN) for _ in range(LAYERS))
        self.out_ln = nn.ModuleList(nn.LayerNorm(HIDDEN, eps=EPS) for _ in range(LAYERS))

    def attention(self, i, x, mask):
        bs, q_length, dim = x.size()
        k_length = x.size(1)
        dim_per_head = HIDDEN // HEADS
        mask_reshp = (bs, 1, 1, k_length)

        def shape(t):
            return t.view(bs, -1, HEADS, dim_per_head).transpose(1, 2)

        def unshape(t):
            return t.transpose(1, 2).contiguous().view(bs, -1, HEADS * dim_per_head)

        q, k, v = shape(self.q_lin[i](x)), shape(self.k_lin[i](x)), shape(self.v_lin[i](x))
        if self.era == "sdpa":  # DistilBertSdpaAttention: the 4-D mask comes from the model
            return self.out_lin[i](unshape(sdpa(q, k, v, mask)))
        q = q / math.sqrt(dim_per_head)
        scores = torch.matmul(q, k.transpose(2, 3))
        mask = (mask == 0).view(mask_reshp).expand_as(scores)
        if self.era == "old":
            scores = scores.masked_fill(mask, -float("inf"))
        else:
            scores = scores.masked_fill(mask, torch.tensor(torch.finfo(scores.dtype).min))
        weights = nn.functional.softmax(scores, dim=-1)
        return self.out_lin[i](unshape(torch.matmul(weights, v)))

    def forward(self, input_ids, attention_mask):
        seq_length = input_ids.size(1)
        if self.era == "old":
            position_ids = torch.arange(seq_length, dtype=torch.long, device=input_ids.device)
            position_ids = position_ids.unsqueeze(0).expand_as(input_ids)
        else:
            position_ids = self.position_ids[:, :seq_length]
        x = self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(position_ids))
        if self.era == "sdpa":
            attention_mask = sdpa_mask(attention_mask)
        for i in range(LAYERS):
            sa = self.sa_ln[i](self.attention(i, x, attention_mask) + x)
            ffn = self.lin2[i](nn.functional.gelu(self.lin1[i](sa)))
            x = self.out_ln[i](ffn + sa)
        return (x,)


class AlbertModel(nn.Module):
    """One shared layer group, embedding size != hidden size, gelu_new."""

    def __init__(self, era):
        super().__init__()
        self.era = era
        self.word_embeddings = nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.position_embeddings = nn.Embedding(MAX_POS, EMBED)
        self.token_type_embeddings = nn.Embedding(2, EMBED)
        self.LayerNorm = nn.LayerNorm(EMBED, eps=EPS)
        self.register_buffer("position_ids", torch.arange(MAX_POS).expand((1, -1)))
        self.embedding_hidden_mapping_in = nn.Linear(EMBED, HIDDEN)
        self.attention = SelfAttention(era)
        self.dense, self.attn_ln = nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN, eps=EPS)
        self.ffn, self.ffn_output = nn.Linear(HIDDEN, INTERMEDIATE), nn.Linear(INTERMEDIATE, HIDDEN)
        self.full_layer_layer_norm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.pooler = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, input_ids, attention_mask, token_type_ids):
        seq_length = input_ids.size()[1]
        position_ids = self.position_ids[:, 0:seq_length]
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings += self.position_embeddings(position_ids)
        x = self.embedding_hidden_mapping_in(self.LayerNorm(embeddings))
        if self.era == "sdpa":
            mask = sdpa_mask(attention_mask)
        else:
            ext = attention_mask.unsqueeze(1).unsqueeze(2)
            ext = ext.to(dtype=torch.float32)
            mask = (1.0 - ext) * mask_value(self.era)
        for _ in range(LAYERS):  # the same weights every layer
            context = self.attention.scores(x, mask)
            if self.era == "sdpa":  # AlbertSdpaAttention
                context = context.transpose(1, 2).reshape(x.size(0), x.size(1), HIDDEN)
            else:
                context = context.transpose(2, 1).flatten(2)
            a = self.attn_ln(x + self.dense(context))
            f = self.ffn_output(gelu_new(self.ffn(a)))
            x = self.full_layer_layer_norm(f + a)
        return x, torch.tanh(self.pooler(x[:, 0]))


FAMILIES = {
    # name: (constructor, input names, output names, padding token)
    "bert": (lambda era: BertModel(era), ["input_ids", "attention_mask", "token_type_ids"],
             ["last_hidden_state", "pooler_output"], 0),
    "roberta": (lambda era: BertModel(era, roberta=True), ["input_ids", "attention_mask"],
                ["last_hidden_state", "pooler_output"], 1),
    "distilbert": (lambda era: DistilBertModel(era), ["input_ids", "attention_mask"],
                   ["last_hidden_state"], 0),
    "albert": (lambda era: AlbertModel(era), ["input_ids", "attention_mask", "token_type_ids"],
               ["last_hidden_state", "pooler_output"], 0),
}


def init_weights(model, seed):
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        with torch.no_grad():
            if "LayerNorm" in name or "_ln" in name or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)


def inputs_for(names, pad):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(2, VOCAB, (BATCH, SEQ), generator=g)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[1, 5:] = 0  # right padding in the second sample
    ids[1, 5:] = pad
    types = torch.zeros(BATCH, SEQ, dtype=torch.long)
    types[:, 4:] = 1
    return [{"input_ids": ids, "attention_mask": mask, "token_type_ids": types}[n] for n in names]


def export(out_root, family, opset, dynamic, era=None):
    era = era or ("old" if opset < 13 else "new")
    make, in_names, out_names, pad = FAMILIES[family]
    model = make(era).eval()
    init_weights(model, seed=opset)
    args = inputs_for(in_names, pad)
    name = f"{family}_opset{opset}" + ("" if dynamic else "_static") + ("_sdpa" if era == "sdpa" else "")
    d = os.path.join(out_root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    axes = {n: {0: "batch", 1: "sequence"} for n in in_names + out_names} if dynamic else None
    if axes and "pooler_output" in axes:
        axes["pooler_output"] = {0: "batch"}
    with torch.no_grad():
        outs = model(*args)
        torch.onnx.export(model, tuple(args), os.path.join(d, "model.onnx"), input_names=in_names,
                          output_names=out_names, dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(os.path.join(d, "model.onnx")))
    for k, t in enumerate(args):
        p = numpy_helper.from_array(t.numpy(), in_names[k])
        open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb").write(p.SerializeToString())
    for k, t in enumerate(outs):
        p = numpy_helper.from_array(t.numpy().astype(np.float32), out_names[k])
        open(os.path.join(d, "test_data_set_0", f"output_{k}.pb"), "wb").write(p.SerializeToString())
    json.dump({"family": family, "opset": opset, "era": era, "dynamic_axes": dynamic,
               "torch_version": torch.__version__, "layers": LAYERS, "hidden": HIDDEN,
               "heads": HEADS, "generator": "tools/export_bert_variants.py"},
              open(os.path.join(d, "config.json"), "w"), indent=1)
    return name


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for family in FAMILIES:
        for opset in OPSETS:
            for dynamic in (True, False):
                print(export(sys.argv[1], family, opset, dynamic), flush=True)
                if opset in (14, 17):
                    print(export(sys.argv[1], family, opset, dynamic, "sdpa"), flush=True)


if __name__ == "__main__":
    main()
