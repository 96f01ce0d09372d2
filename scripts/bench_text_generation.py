"""Masked-diffusion text generation speed: tokens/s against sampling steps (and the AR twin for reference).

Speed does not depend on the weights, so the models are freshly initialised at the size of the reversal
experiment's (d_model 128, 4 layers) with max_len 64: a 16-token prompt and a 48-token answer, batch 16.

    python scripts/bench_text_generation.py [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from robodiff.text.generation import generate_ids
from robodiff.text.model import TextLM
from robodiff.text.tokenizer import train_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = train_tokenizer([f"word{i} " * 3 for i in range(600)], "bpe", 1024)
    prompt_len, gen = 16, 48
    prompt = torch.randint(4, tok.vocab_size, (args.batch, prompt_len))
    rows = []
    for objective, settings in (("mdm", [(s, 48) for s in (6, 12, 24, 48)] + [(48, 8)]), ("ar", [(48, 1)])):
        torch.manual_seed(0)
        model = TextLM(tok, objective, d_model=128, n_layers=4, n_heads=4, max_len=64).eval()
        for steps, block in settings:
            generate_ids(model, prompt, gen, block_length=block, steps=steps)  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                generate_ids(model, prompt, gen, block_length=block, steps=steps)
                times.append(time.perf_counter() - t0)
            best = min(times)
            rows.append((objective, steps, block, args.batch * gen / best, best / steps * 1e3))
    print("| model | steps | block length | tokens/s | ms per step |")
    print("|---|---|---|---|---|")
    for objective, steps, block, tps, ms in rows:
        print(f"| {objective.upper()} | {steps} | {block} | {tps:,.0f} | {ms:.1f} |")


if __name__ == "__main__":
    main()
