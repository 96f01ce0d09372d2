"""``robodiff text ...``: train a masked diffusion LM (or its autoregressive twin), generate, run the reversal test.

    robodiff text train --corpus facts|PATH [--objective mdm|ar] [--mode pretrain|sft] [--steps N] ...
    robodiff text generate CHECKPOINT --prompt "..." [--length L --block-length B --steps S
                           --remasking low_confidence|random --guidance w --temperature T --trace]
    robodiff text reversal [--seeds N] [--out DIR] [--steps N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from robodiff.cli import UserError

_TRACE_HELP = ("print the sequence after every step: tokens committed at that step in [brackets], "
               "still-masked positions as _")


def _settings_errors():
    from robodiff.diffusion.masked import GenerationSettingsError

    return GenerationSettingsError


def _cmd_train(args) -> int:
    import torch

    from robodiff.text.corpus import make_facts, read_corpus
    from robodiff.text.dataset import TokenDataset
    from robodiff.text.model import build_model, text_model_config
    from robodiff.text.reversal import FactQuiz
    from robodiff.text.tokenizer import train_tokenizer
    from robodiff.training import train

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.corpus == "facts":
        if args.mode == "sft":
            raise UserError("--corpus facts is pre-training text; --mode sft needs a prompt<TAB>answer file")
        corpus = make_facts(args.seed, n_both=args.facts_both, n_one_way=args.facts_one_way)
        corpus_cfg = {"kind": "facts", "seed": args.seed, "n_both": args.facts_both, "n_one_way": args.facts_one_way}
    else:
        try:
            corpus = read_corpus(args.corpus, sft=args.mode == "sft")
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        corpus_cfg = {"kind": "file", "path": str(Path(args.corpus).resolve())}
    tokenizer = train_tokenizer(corpus.lines, args.tokenizer, args.vocab_size)
    try:
        dataset = TokenDataset.from_corpus(corpus, tokenizer, max_len=args.max_len)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    out = args.output_dir or f"outputs/text_{args.objective}_{Path(args.corpus).stem}"
    cfg = {
        "name": f"text {args.objective}",
        "output_dir": out, "seed": args.seed, "device": args.device,
        "text": text_model_config(tokenizer, objective=args.objective, mode=args.mode, d_model=args.d_model,
                                  n_layers=args.n_layers, n_heads=args.n_heads, max_len=args.max_len,
                                  seq_len=dataset.seq_len),
        "corpus": dict(corpus_cfg, tokenizer=args.tokenizer, vocab_size=args.vocab_size),
        "training": {"batch_size": min(args.batch_size, len(dataset)), "lr": args.lr, "lr_warmup_steps": 100,
                     "weight_decay": 0.0, "max_steps": args.steps, "num_epochs": 10**6, "val_every": 0,
                     "rollout_every": args.eval_every if corpus.questions else None, "resume": args.resume,
                     "overwrite": args.overwrite, "num_threads": args.threads,
                     "checkpoint": {"every": 10**6, "top_k": 1, "monitor": "test/forward_acc"}},
        "logging": {"tensorboard": False},
    }
    quiz = FactQuiz(corpus.questions, dataset.seq_len) if corpus.questions else None
    result = train(cfg, build_model, dataset, quiz)
    scores = {k: round(v, 3) for k, v in result.metrics.items() if k.startswith("test/")}
    print(f"trained {result.step} steps; checkpoint {result.latest_checkpoint}" + (f"; {scores}" if scores else ""))
    return 0


def _trace_printer(tokenizer, prompt_len: int, steps: int):
    def show(i, x, committed):
        row, new = x[0, prompt_len:].tolist(), committed[0, prompt_len:].tolist()
        words = []
        for tok_id, is_new in zip(row, new):
            piece = "_" if tok_id == tokenizer.mask_id else tokenizer.show([tok_id]).strip() or "\u2423"
            words.append(f"[{piece}]" if is_new else piece)
        print(f"step {i + 1:>3}/{steps}: {' '.join(words)}")

    return show


def _cmd_generate(args) -> int:
    import torch

    from robodiff.text.generation import generate_ids
    from robodiff.text.model import build_model
    from robodiff.training.checkpoint import load_model

    model, ckpt = load_model(args.checkpoint, build_model, ema=not args.no_ema, map_location=args.device)
    tok = model.tokenizer
    prompt = tok.encode(args.prompt)
    seq_len = ckpt["config"]["text"].get("seq_len")
    length = args.length or (seq_len - len(prompt) if seq_len and seq_len > len(prompt) else 16)
    if len(prompt) + length > model.net.max_len:
        raise UserError(f"prompt ({len(prompt)} tokens) + --length {length} exceeds the model's max_len "
                        f"{model.net.max_len}; lower --length")
    steps = length if model.causal else (args.steps or length)
    trace = _trace_printer(tok, len(prompt), steps) if args.trace else None
    g = torch.Generator().manual_seed(args.seed)
    try:
        out = generate_ids(model, torch.tensor([prompt]), length, block_length=args.block_length, steps=args.steps,
                           remasking=args.remasking, temperature=args.temperature, guidance=args.guidance,
                           generator=g, trace=trace)
    except _settings_errors() as exc:
        raise UserError(str(exc)) from exc
    print(tok.decode(out[0, len(prompt):].tolist()))
    return 0


def _cmd_reversal(args) -> int:
    import torch

    from robodiff.text.reversal import run_reversal

    torch.set_num_threads(args.threads)
    overrides = {"max_steps": args.steps} if args.steps else {}
    summary = run_reversal(args.out, seeds=tuple(range(args.seed_start, args.seed_start + args.seeds)),
                           num_threads=args.threads, device=args.device, **overrides)
    print((Path(args.out) / "reversal_table.md").read_text())
    print(f"wrote {args.out}/reversal_table.md, reversal_accuracy.png, reversal_results.json "
          f"({len(summary['runs'])} runs)")
    return 0


def register(sub) -> None:
    """Add the ``text`` command group to the ``robodiff`` parser's subcommands."""
    from robodiff.diffusion.names import REMASKING

    text = sub.add_parser("text", help="masked diffusion language model (LLaDA-style) and its autoregressive twin",
                          description="Text on the diffusion core: train, generate, and the reversal experiment.")
    tsub = text.add_subparsers(dest="text_command", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    tr = tsub.add_parser("train", formatter_class=fmt, help="train a model through the one training loop",
                         description="Train a tokenizer on the corpus, then a masked diffusion LM (--objective mdm) "
                                     "or the same transformer causal with next-token loss (--objective ar). "
                                     "On --corpus facts the model answers the fact questions during training.")
    tr.add_argument("--corpus", required=True, help="'facts' (synthetic, generated from --seed) or a UTF-8 text "
                                                    "file: one sequence per line (--mode sft: prompt<TAB>answer)")
    tr.add_argument("--objective", choices=("mdm", "ar"), default="mdm")
    tr.add_argument("--mode", choices=("pretrain", "sft"), default="pretrain",
                    help="pretrain: mask anything; sft: the prompt is never masked, loss per answer token")
    tr.add_argument("--tokenizer", choices=("bpe", "char"), default="bpe")
    tr.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary bound (merges stop earlier "
                                                                 "when every word is one token)")
    tr.add_argument("--d-model", type=int, default=128)
    tr.add_argument("--n-layers", type=int, default=4)
    tr.add_argument("--n-heads", type=int, default=4)
    tr.add_argument("--max-len", type=int, default=64, help="longest sequence (prompt + answer) the model takes")
    tr.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--lr", type=float, default=3e-3)
    tr.add_argument("--eval-every", type=int, default=20, help="epochs between fact-question evaluations")
    tr.add_argument("--facts-both", type=int, default=30, help="facts trained in both phrasings")
    tr.add_argument("--facts-one-way", type=int, default=15, help="facts trained in the forward phrasing only")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto", help="auto | cpu | cuda")
    tr.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    tr.add_argument("--output-dir", default=None, help="run directory (default outputs/text_<objective>_<corpus>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    tr.add_argument("--overwrite", action="store_true", help="replace the run in --output-dir")
    tr.set_defaults(func=_cmd_train)

    ge = tsub.add_parser("generate", help="answer a prompt with a trained checkpoint",
                         description="Prompt + an all-masked answer of --length tokens, unmasked in blocks of "
                                     "--block-length over --steps steps (autoregressive checkpoints decode one "
                                     "token per step). Prints the answer (up to the first end-of-text).")
    ge.add_argument("checkpoint", help="a .ckpt written by `robodiff text train`")
    ge.add_argument("--prompt", required=True)
    ge.add_argument("--length", type=int, default=None, help="answer tokens (default: fill the training length)")
    ge.add_argument("--block-length", type=int, default=None, help="semi-autoregressive block (default: --length)")
    ge.add_argument("--steps", type=int, default=None, help="sampling steps, a multiple of the blocks "
                                                            "(default: --length, one token per step)")
    ge.add_argument("--remasking", choices=REMASKING, default="low_confidence")
    ge.add_argument("--guidance", type=float, default=0.0, help="classifier-free guidance scale w (LLaDA's: "
                                                                "u + (w + 1)(c - u)); 0 = off")
    ge.add_argument("--temperature", type=float, default=0.0, help="0 = most likely token; > 0 Gumbel sampling")
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--device", default="cpu")
    ge.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    ge.add_argument("--trace", action="store_true", help=_TRACE_HELP)
    ge.set_defaults(func=_cmd_generate)

    rv = tsub.add_parser("reversal", formatter_class=fmt, help="the reversal-curse experiment: MDM vs AR",
                         description="For each seed: a fresh fact corpus, one tokenizer, and an MDM and an AR run "
                                     "of the same transformer, data and compute; exact-match accuracy on forward "
                                     "and held-out reversed questions during training. Writes a table, a plot "
                                     "and the JSON of all curves; finished runs are reused, killed ones resume.")
    rv.add_argument("--seeds", type=int, default=3, help="number of seeds (fact sets)")
    rv.add_argument("--seed-start", type=int, default=0)
    rv.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: the experiment's)")
    rv.add_argument("--out", default="outputs/text_reversal", help="output directory")
    rv.add_argument("--device", default="cpu")
    rv.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    rv.set_defaults(func=_cmd_reversal)
