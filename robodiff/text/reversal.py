"""The reversal experiment: a masked diffusion LM and its autoregressive twin, trained on facts in one direction.

For each seed: a fresh fact corpus (:func:`robodiff.text.corpus.make_facts`), one tokenizer trained on it,
and two runs of the one training loop that differ only in ``text.objective`` ("mdm": bidirectional transformer,
LLaDA loss; "ar": the same transformer with a causal mask, next-token loss), with the same size, data,
tokenizer, batch, steps and so the same training FLOPs. During training the EMA model answers every question
(exact match of the generated answer), so the logs hold accuracy against training compute:

    forward   "<A> is the mother of" -> B      for facts trained only as "A is the mother of B"
    reversed  "The mother of <B> is" -> A      for the same facts: this phrasing was held out
    both_*    the same for facts trained in both phrasings (a check that the phrasings were learned)

Writes ``reversal_results.json``, ``reversal_table.md`` and ``reversal_accuracy.png`` into ``out_dir``; each
run lives in ``out_dir/seed<S>_<objective>`` and resumes if interrupted (finished runs are not redone).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from robodiff.text.corpus import Question, make_facts
from robodiff.text.dataset import TokenDataset
from robodiff.text.generation import complete
from robodiff.text.model import build_model, text_model_config
from robodiff.text.tokenizer import train_tokenizer

METRICS = ("forward_acc", "reversed_acc", "both_forward_acc", "both_reversed_acc")
# Sized for a shared 2-core CPU (one run: a few minutes on one thread). Every word becomes one BPE token
# (the vocabulary bound is never reached); the batch is the whole corpus, so one step is one epoch.
EXPERIMENT_DEFAULTS = dict(n_both=30, n_one_way=30, vocab_size=4096, d_model=128, n_layers=2, n_heads=4,
                           batch_size=90, lr=1e-3, max_steps=800, eval_every_epochs=50)


class FactQuiz:
    """``evaluate`` for the training loop: exact-match accuracy of the answers, per split and direction."""

    def __init__(self, questions: list[Question], seq_len: int):
        self.questions, self.seq_len = questions, seq_len

    def __call__(self, model) -> dict:
        answers = complete(model, [q.prompt for q in self.questions], total_length=self.seq_len)
        out = {}
        for split, prefix in (("one_way", ""), ("both", "both_")):
            for direction in ("forward", "reversed"):
                hits = [a == q.answer for a, q in zip(answers, self.questions)
                        if q.split == split and q.direction == direction]
                if hits:
                    out[f"{prefix}{direction}_acc"] = float(np.mean(hits))
        return out


def reversal_run_config(seed: int, objective: str, out_dir: Path, settings: dict, tokenizer, dataset) -> dict:
    s, seq_len = settings, dataset.seq_len
    return {
        "name": f"reversal seed {seed} {objective}",
        "output_dir": str(out_dir / f"seed{seed}_{objective}"),
        "seed": seed,
        "device": s.get("device", "cpu"),
        "text": text_model_config(tokenizer, objective=objective, d_model=s["d_model"], n_layers=s["n_layers"],
                                  n_heads=s["n_heads"], max_len=max(seq_len, 16), seq_len=seq_len),
        "corpus": {"kind": "facts", "seed": seed, "n_both": s["n_both"], "n_one_way": s["n_one_way"],
                   "vocab_size": s["vocab_size"]},
        "training": {"batch_size": min(s["batch_size"], len(dataset)), "lr": s["lr"], "lr_warmup_steps": 50, "weight_decay": 0.0,
                     "betas": [0.9, 0.99], "lr_scheduler": "constant_with_warmup", "ema": {"enabled": False},
                     "max_steps": s["max_steps"], "num_epochs": 10**6, "rollout_every": s["eval_every_epochs"],
                     "val_every": 0, "num_threads": s.get("num_threads"), "resume": True,
                     "progress": s.get("progress", True),
                     "checkpoint": {"every": 10**6, "top_k": 1, "monitor": "test/forward_acc"}},
        "logging": {"tensorboard": False},
    }


def _curve(run_dir: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "logs.jsonl").read_text().splitlines() if ln.strip()]
    return [{"step": r["step"], **{m: r[f"test/{m}"] for m in METRICS if f"test/{m}" in r}}
            for r in rows if "test/forward_acc" in r]


def run_reversal(out_dir: str | Path, seeds=(0, 1, 2), objectives=("mdm", "ar"), **overrides) -> dict:
    """Train every (seed, objective) run, then write the table, the plot and the JSON of all curves."""
    from robodiff.training import train

    unknown = set(overrides) - set(EXPERIMENT_DEFAULTS) - {"device", "num_threads", "progress"}
    if unknown:
        raise ValueError(f"unknown reversal settings {sorted(unknown)}; known: {sorted(EXPERIMENT_DEFAULTS)}")
    settings = dict(EXPERIMENT_DEFAULTS, **overrides)
    out_dir = Path(out_dir)
    runs = []
    for seed in seeds:
        corpus = make_facts(seed, n_both=settings["n_both"], n_one_way=settings["n_one_way"])
        tokenizer = train_tokenizer(corpus.lines, "bpe", settings["vocab_size"])
        dataset = TokenDataset.from_corpus(corpus, tokenizer)
        for objective in objectives:
            cfg = reversal_run_config(seed, objective, out_dir, settings, tokenizer, dataset)
            result = train(cfg, build_model, dataset, FactQuiz(corpus.questions, dataset.seq_len))
            n_params = sum(p.numel() for p in build_model(cfg).parameters())
            tokens_per_step = cfg["training"]["batch_size"] * dataset.seq_len
            curve = _curve(Path(cfg["output_dir"]))
            for point in curve:  # training FLOPs ~ 6 x parameters x tokens (forward + backward)
                point["train_flops"] = 6.0 * n_params * tokens_per_step * point["step"]
            runs.append({"seed": seed, "objective": objective, "params": n_params, "steps": result.step,
                         "seq_len": dataset.seq_len, "final": curve[-1] if curve else {}, "curve": curve})
    summary = {"settings": settings, "seeds": list(seeds), "runs": runs}
    _atomic_write(out_dir / "reversal_results.json", json.dumps(summary, indent=2))
    _atomic_write(out_dir / "reversal_table.md", reversal_table(summary))
    plot_reversal(summary, out_dir / "reversal_accuracy.png")
    return summary


def reversal_table(summary: dict) -> str:
    """Markdown: final accuracy per objective, mean +- std over seeds, and per seed."""
    runs = summary["runs"]
    lines = ["| model | seeds | params | steps | train FLOPs | forward | reversed (held out) | both: fwd / rev |",
             "|---|---|---|---|---|---|---|---|"]
    for obj in dict.fromkeys(r["objective"] for r in runs):
        rs = [r for r in runs if r["objective"] == obj and r["final"]]
        if not rs:
            continue

        def stat(m, rs=rs):
            v = np.array([r["final"][m] for r in rs]) * 100
            return f"{v.mean():.1f} +- {v.std():.1f}"

        per_seed = ", ".join(f"{r['final']['reversed_acc'] * 100:.0f}" for r in rs)
        lines.append(f"| {obj.upper()} | {len(rs)} | {rs[0]['params'] / 1e6:.2f}M | {rs[0]['steps']} | "
                     f"{rs[0]['final']['train_flops']:.2e} | {stat('forward_acc')} | {stat('reversed_acc')} "
                     f"(per seed: {per_seed}) | {stat('both_forward_acc')} / {stat('both_reversed_acc')} |")
    return "\n".join(lines) + "\n"


def plot_reversal(summary: dict, path: Path) -> None:
    """Accuracy (forward solid, reversed dashed) against training FLOPs; one line per run, mean in bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colors = {"mdm": "tab:blue", "ar": "tab:red"}
    for ax, metric, title in ((axes[0], "forward_acc", "forward questions (trained direction)"),
                              (axes[1], "reversed_acc", "reversed questions (held out)")):
        for obj in dict.fromkeys(r["objective"] for r in summary["runs"]):
            rs = [r for r in summary["runs"] if r["objective"] == obj and r["curve"]]
            for i, r in enumerate(rs):
                x = [p["train_flops"] for p in r["curve"]]
                ax.plot(x, [100 * p[metric] for p in r["curve"]], color=colors.get(obj), alpha=0.35, lw=1)
            n = min(len(r["curve"]) for r in rs) if rs else 0
            if n:
                x = [p["train_flops"] for p in rs[0]["curve"][:n]]
                mean = np.mean([[100 * p[metric] for p in r["curve"][:n]] for r in rs], axis=0)
                ax.plot(x, mean, color=colors.get(obj), lw=2.5, label=f"{obj.upper()} (mean of {len(rs)} seeds)")
        ax.set_title(title)
        ax.set_xlabel("training FLOPs (6 x params x tokens)")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("exact-match accuracy (%)")
    fig.suptitle("Reversal experiment: masked diffusion LM vs autoregressive twin (same transformer, data, compute)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
