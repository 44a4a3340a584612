#!/usr/bin/env python3
"""PyTorch's side of the GPU comparison (issue 7): BERT-base and GPT-2 (Hugging Face transformers,
random weights from the default configs, float16 on CUDA), eager and torch.compile, on the shapes
tfhost's GPU benchmarks use. Prints one line per measurement:

    torch bert-base fp16 eager batch 1 seq 128: 1.234 ms (median of 50)

Modes: eager; compile (torch.compile's default); compile-cudagraphs (torch.compile with
mode="reduce-overhead": the step replayed as CUDA graphs, as tfhost's --cuda_graph runs it, so
the peer at its best on launch cost).

    python3 bench/torch_gpu.py [--iterations N] [--quick]

Runs on the GPU machine from scripts/gpu-check.sh (its python3 has torch and transformers); each
model and mode is tried on its own, and a failure is printed and skipped, never fatal.
"""
import argparse
import statistics
import sys
import time


def median_ms(fn, iterations, torch, prep=None):
    """The median time of fn() on the GPU; prep() (untimed) before each call."""
    for _ in range(5):
        if prep:
            prep()
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iterations):
        if prep:
            prep()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def compiled(torch, model, mode):
    if mode == "eager":
        return model
    if mode == "compile-cudagraphs":
        return torch.compile(model, mode="reduce-overhead")
    return torch.compile(model)


def step_begin(torch, mode):
    """Under CUDA graphs (reduce-overhead), each call is a new step: the last call's outputs
    (GPT-2's cache) may be read as inputs without being reported as overwritten."""
    if mode == "compile-cudagraphs":
        return torch.compiler.cudagraph_mark_step_begin
    return None


def bert(torch, config, model, batches, iterations, mode):
    m = compiled(torch, model, mode)
    for b in batches:
        ids = torch.randint(0, config.vocab_size, (b, 128), device="cuda")
        mask = torch.ones_like(ids)
        try:
            with torch.inference_mode():
                ms = median_ms(lambda: m(input_ids=ids, attention_mask=mask), iterations, torch,
                               step_begin(torch, mode))
            print(f"torch bert-base fp16 {mode} batch {b} seq 128: {ms:.3f} ms "
                  f"(median of {iterations})", flush=True)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"torch bert-base fp16 {mode} batch {b}: failed: {type(e).__name__}: {e}",
                  flush=True)


def gpt2(torch, config, model, batches, iterations, mode, past=128):
    m = compiled(torch, model, mode)
    for b in batches:
        try:
            with torch.inference_mode():
                # A prompt one token longer, that token then dropped: the cache holds `past`
                # rows in the layout every step leaves it in (views of past + 1 rows), so the
                # compiled step is not compiled again at the second call for new strides.
                prompt = torch.randint(0, config.vocab_size, (b, past + 1), device="cuda")
                cache = model(input_ids=prompt, use_cache=True).past_key_values
                cache.crop(-1)
                step = torch.randint(0, config.vocab_size, (b, 1), device="cuda")
                mask = torch.ones((b, past + 1), dtype=torch.long, device="cuda")
                begin = step_begin(torch, mode)

                def prep():  # untimed: back to `past` rows (the step appended one)
                    if cache.get_seq_length() > past:
                        cache.crop(-1)  # (negative: that many rows off the end)
                    if begin:
                        # Under CUDA graphs the cache's tensors are the last replay's outputs,
                        # which the next replay overwrites: fed back as they are, the step failed
                        # ("accessing tensor output of CUDAGraphs that has been overwritten",
                        # H200, December 2026). Copies of them are ordinary inputs (the replay
                        # copies them in: part of its time, as it would be in a decoding loop).
                        for layer in getattr(cache, "layers", []):
                            if getattr(layer, "keys", None) is not None:
                                layer.keys = layer.keys.clone()
                                layer.values = layer.values.clone()
                        begin()

                def one():
                    m(input_ids=step, attention_mask=mask, past_key_values=cache, use_cache=True)

                ms = median_ms(one, iterations, torch, prep)
                if cache.get_seq_length() != past + 1:
                    raise RuntimeError(f"the cache has {cache.get_seq_length()} rows after a "
                                       f"step, not {past + 1}: not the step at past {past}")
            print(f"torch gpt2 fp16 {mode} decode batch {b} past {past}: {ms:.3f} ms "
                  f"(median of {iterations})", flush=True)
        except Exception as e:  # noqa: BLE001
            print(f"torch gpt2 fp16 {mode} decode batch {b}: failed: {type(e).__name__}: {e}",
                  flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="torch.compile at batch 1 only")
    args = p.parse_args()
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"torch: not available here ({e})")
        return 2
    if not torch.cuda.is_available():
        print("torch: no CUDA device")
        return 2
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.cuda.get_device_name(0)}", flush=True)
    # Each mode for both models before the next mode, the CUDA-graph one before the default one:
    # under --quick, gpu-check's time limit may stop the script before the last.
    modes = ["eager", "compile-cudagraphs", "compile"]
    t0 = time.time()
    bert_config = transformers.BertConfig()  # BERT-base: 12 layers, hidden 768, 12 heads
    bert_model = transformers.BertModel(bert_config).half().cuda().eval()
    gpt2_config = transformers.GPT2Config()  # GPT-2 small: 12 layers, hidden 768, vocab 50257
    gpt2_model = transformers.GPT2LMHeadModel(gpt2_config).half().cuda().eval()
    for mode in modes:
        torch._dynamo.reset()  # (each mode compiles anew, not against the last's recompile limit)
        # (--quick: the compiled modes at batch 1 only; each batch compiles anew.)
        few = args.quick and mode != "eager"
        bert(torch, bert_config, bert_model, [1] if few else [1, 8, 64], args.iterations, mode)
        gpt2(torch, gpt2_config, gpt2_model, [1] if few else [1, 8, 128], args.iterations, mode)
    print(f"torch: done in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
