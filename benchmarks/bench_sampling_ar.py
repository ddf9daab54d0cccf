"""Sampling and training throughput of the transformer and SSM families against reference implementations.

For the default sizes of both families, at batch 1, 256 and 4096 on this CPU, in float32 and in bfloat16
(each side at the same precision; the ratio printed is reference time / our time):

* ours: ``gen.sample(batch)`` end to end (tokens → decoded FlowTable) with ``sample_precision`` float32 or
  bfloat16 (a bf16 copy of the weights);
* transformer reference: Hugging Face ``LlamaForCausalLM.generate`` with its KV cache, random weights,
  the same d_model / layers / heads / SwiGLU width, vocabulary = our packet + iat vocabularies,
  a one-token prompt (the class token) and ``max_new_tokens = min_new_tokens = n_packets``, in float32 or
  with bf16 weights;
* SSM reference: the pure-PyTorch ``mambapy`` Mamba LM (same d_model / layers / d_state / expand / d_conv),
  generating ``n_packets`` tokens with its recurrent ``step``, in float32 or under bf16 autocast (its step
  does not run on bf16 weights).

Timing: the reference and ours alternate, each measured ``reps`` times (one at batch 4096), and the best
(lowest) wall time is kept, since the machine is shared. Peak memory: growth of the process's peak
resident set size during one call (Linux ``VmHWM`` after resetting it through ``/proc/self/clear_refs``),
i.e. what the call had to allocate beyond the memory already mapped; weights are excluded.
Training: forward + backward + AdamW step at batch 256 on constructed flows, flows per second.

Our models are untrained (random weights, tokens fitted on constructed flows), so almost no flow stops early
and the finished-row compaction of ``generate`` hardly helps here; on trained models with short flows it does.

    .venv/bin/python benchmarks/bench_sampling_ar.py [--threads 1] [--reps 3] [--batches 1 256 4096]
"""

from __future__ import annotations

import argparse
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "sampling_ar.json"
PRECISIONS = {"fp32": ("float32", torch.float32), "bf16": ("bfloat16", torch.bfloat16)}  # ours, reference


def _vm_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def peak_rss_growth_mib(fn: Callable[[], object]) -> float:
    """Peak RSS growth during ``fn()`` in MiB (Linux only; NaN elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _vm_kib("VmRSS")
        fn()
        return (_vm_kib("VmHWM") - before) / 1024
    except (OSError, AttributeError):
        fn()
        return float("nan")


def best_time(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ---------------------------------------------------------------------------------------------- models
def our_generator(family: str, flows, precision: str):
    from ntg.models import create_generator

    gen = create_generator(family, sample_precision=precision)
    gen.prepare(flows)
    gen.module.eval()
    return gen


def hf_llama(gen, vocab: int, dtype: torch.dtype = torch.float32):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=gen.d_model, intermediate_size=gen.mlp_hidden,
        num_hidden_layers=gen.n_layers, num_attention_heads=gen.n_heads, num_key_value_heads=gen.n_heads,
        max_position_embeddings=gen.n_packets + 1, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=None, pad_token_id=0,
    )
    model = LlamaForCausalLM(config).to(dtype).eval()

    def sample(batch: int, steps: int | None = None) -> torch.Tensor:
        steps = steps or gen.n_packets
        prompt = torch.randint(1, vocab, (batch, 1))
        with torch.no_grad():
            return model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0,
                                  max_new_tokens=steps, min_new_tokens=steps, use_cache=True)

    return model, sample


def mambapy_lm(gen, vocab: int, dtype: torch.dtype = torch.float32):
    """mambapy's ``Mamba`` with an embedding, final RMSNorm and head: what ``mambapy.lm.LM.step`` does
    (``mambapy.lm`` itself needs einops for Mamba-2, which is not installed). mambapy's step keeps ``A`` in
    float32 and fails on bf16 weights, so its bf16 figure runs float32 weights under CPU bf16 autocast."""
    from mambapy.mamba import Mamba, MambaConfig, RMSNorm

    config = MambaConfig(d_model=gen.d_model, n_layers=gen.n_layers, d_state=gen.d_state,
                         expand_factor=gen.expand, d_conv=gen.d_conv)
    model = torch.nn.ModuleDict({
        "embedding": torch.nn.Embedding(vocab, config.d_model), "mamba": Mamba(config),
        "norm_f": RMSNorm(config.d_model), "lm_head": torch.nn.Linear(config.d_model, vocab, bias=False),
    }).eval()
    autocast = dtype != torch.float32

    def sample(batch: int, steps: int | None = None) -> torch.Tensor:
        token = torch.randint(1, vocab, (batch,))
        conv = (batch, config.d_inner, config.d_conv - 1)
        caches = [(None, torch.zeros(conv)) for _ in range(config.n_layers)]
        out = []
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=autocast):
            for _ in range(steps or gen.n_packets):
                x, caches = model["mamba"].step(model["embedding"](token), caches)
                logits = model["lm_head"](model["norm_f"](x))
                token = torch.multinomial(torch.softmax(logits.float(), dim=-1), 1).squeeze(1)
                out.append(token)
        return torch.stack(out, 1)

    return model, sample


def training_flows_per_s(gen, flows, batch: int = 256, steps: int = 4) -> float:
    data = gen.encode(flows)
    module = gen.module
    module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-3)
    order = torch.randperm(len(flows), generator=torch.Generator().manual_seed(0))

    def one(i: int) -> None:
        idx = order[(i * batch) % len(flows):][:batch]
        loss = module(**{k: v[idx] for k, v in data.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one(0)  # warm-up
    t0 = time.perf_counter()
    for i in range(1, steps + 1):
        one(i)
    module.eval()
    return steps * batch / (time.perf_counter() - t0)


def trained_comparison(runs: Path, batches: list[int], reps: int, out: Path) -> None:
    """Trained generators (real flow lengths) against the references generating the same flows.

    A batched ``generate`` runs until the longest sequence of the batch has ended (finished rows are padded,
    not dropped), so each reference call generates as many steps as the longest flow that our generator
    produced for the same batch; ours drops finished flows as it goes. Same sizes, same thread count.
    """
    import json

    from ntg.models import load_generator

    results: dict = {"mode": "trained", "runs": str(runs), "families": {}}
    for family, make_ref, ref_name in (("transformer", hf_llama, "hf_llama_generate"),
                                       ("ssm", mambapy_lm, "mambapy_step")):
        gen = load_generator(runs / family)
        tok = gen.tokenizer_
        fam: dict = {"num_parameters": gen.num_parameters(), "batches": {}}
        for tag, (precision, dtype) in PRECISIONS.items():
            gen.sample_precision = precision
            _, ref_sample = make_ref(gen, tok.n_packet_tokens + tok.n_iat_tokens, dtype)
            for batch in batches:
                steps = int(gen.sample(batch, seed=0).length.max())
                ours_t = ref_t = float("inf")
                for rep in range(1 if batch >= 4096 else reps):
                    ours_t = min(ours_t, best_time(lambda b=batch, r=rep, g=gen: g.sample(b, seed=r), 1))
                    ref_t = min(ref_t, best_time(lambda b=batch, f=ref_sample, k=steps: f(b, k), 1))
                fam["batches"].setdefault(str(batch), {})[tag] = {
                    "ours_flows_per_s": batch / ours_t, "ref_flows_per_s": batch / ref_t, "ref_steps": steps,
                    "speedup": ref_t / ours_t}
                print(f"{family:11s} trained {tag}, batch {batch:5d}: ours {batch / ours_t:9.0f} flows/s  "
                      f"{ref_name} {batch / ref_t:9.0f} ({steps} steps)  speed-up {ref_t / ours_t:.2f}x", flush=True)
        results["families"][family] = fam
    out = out.with_name(out.stem + "_trained.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


# ---------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256, 4096])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--trained", type=Path, help="folder with trained transformer/ and ssm/ run folders "
                        "(e.g. artifacts/demo/runs): time the task itself, see trained_comparison()")
    args = parser.parse_args()
    if args.trained:
        torch.set_num_threads(args.threads)
        trained_comparison(args.trained, args.batches, args.reps, args.out)
        return
    torch.set_num_threads(args.threads)
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.ar_flows import two_class_flows

    flows = two_class_flows(2048, seed=0)
    results: dict = {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
                     "torch": torch.__version__, "families": {}}
    for family, make_ref, ref_name in (("transformer", hf_llama, "hf_llama_generate"),
                                       ("ssm", mambapy_lm, "mambapy_step")):
        gens = {tag: our_generator(family, flows, precision) for tag, (precision, _) in PRECISIONS.items()}
        tok = gens["fp32"].tokenizer_
        vocab = tok.n_packet_tokens + tok.n_iat_tokens
        refs = {tag: make_ref(gens["fp32"], vocab, dtype) for tag, (_, dtype) in PRECISIONS.items()}
        fam = {
            "num_parameters": gens["fp32"].num_parameters(),
            "reference_parameters": sum(p.numel() for p in refs["fp32"][0].parameters()),
            "flops_per_flow": gens["fp32"].flops_per_flow(batch=64),
            "training_flows_per_s": training_flows_per_s(our_generator(family, flows, "float32"), flows),
            "batches": {},
        }
        for batch in args.batches:
            reps = 1 if batch >= 4096 else args.reps
            runs = {}
            for tag in PRECISIONS:
                runs[f"ours_{tag}"] = lambda b=batch, g=gens[tag]: g.sample(b, seed=0)
                runs[f"{ref_name}_{tag}"] = lambda b=batch, f=refs[tag][1]: f(b)
            if batch < 4096:  # warm-up
                for fn in runs.values():
                    fn()
            times = {name: float("inf") for name in runs}
            for _ in range(reps):  # alternate so that load on the shared machine hits all alike
                for name, fn in runs.items():
                    times[name] = min(times[name], best_time(fn, 1))
            row = {name: {"flows_per_s": batch / t, "seconds": t} for name, t in times.items()}
            for name, fn in runs.items():
                row[name]["peak_mib"] = peak_rss_growth_mib(fn)
            line = f"{family:11s} batch {batch:5d}:"
            for tag in PRECISIONS:
                ours, ref = times[f"ours_{tag}"], times[f"{ref_name}_{tag}"]
                row[f"speedup_{tag}"] = ref / ours
                peaks = row[f"ours_{tag}"]["peak_mib"], row[f"{ref_name}_{tag}"]["peak_mib"]
                line += (f"  {tag} ours {batch / ours:7.0f} flows/s vs {batch / ref:7.0f} = {ref / ours:.2f}x"
                         f" (peak MiB {peaks[0]:.0f} vs {peaks[1]:.0f})")
            fam["batches"][str(batch)] = row
            print(line, flush=True)
        print(f"{family:11s} params {fam['num_parameters']:,} (reference {fam['reference_parameters']:,}), "
              f"{fam['flops_per_flow'] / 1e6:.1f} MFLOP/flow, "
              f"training {fam['training_flows_per_s']:.0f} flows/s",
              flush=True)
        results["families"][family] = fam
    from ntg.utils.io import write_json

    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
