"""Model cards: what a checkpoint is, what it was trained on and how well it did, as ``card.md``.

Generic over tasks: everything comes from the checkpoint's stored run config (``task``, ``policy``,
``training`` and the window sizes) and an evaluation's metrics dict (``mean_score``, ``success_rate``,
``per_seed``, ``sampler``, ``steps``, ``latency_ms_per_chunk``, ...). Units are printed where the config's
``shape_meta`` records them (``units: ...`` per key) and called out as unrecorded where it does not.
Intervals are 95%: bootstrap for the mean score over seeds, Wilson for the success rate.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

RECIPE_KEYS = ("batch_size", "lr", "betas", "weight_decay", "lr_scheduler", "lr_warmup_steps", "num_epochs",
               "max_steps", "max_minutes", "grad_clip", "mixed_precision")


def score_interval(scores, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): percentile-bootstrap interval of the mean over seeds (stays inside the scores'
    range, unlike a normal interval on scores bounded in [0, 1]); seeded, so a card is reproducible."""
    from scipy import stats

    x = np.asarray(scores, np.float64)
    m = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):
        return m, m, m
    ci = stats.bootstrap((x,), np.mean, confidence_level=level, method="percentile", n_resamples=9999,
                         rng=np.random.default_rng(0)).confidence_interval
    return m, float(ci.low), float(ci.high)


def success_interval(successes, level: float = 0.95) -> tuple[float, float, float]:
    """(rate, low, high): Wilson score interval of a success rate."""
    from scipy import stats

    k, n = int(np.sum(successes)), len(successes)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return k / n, float(ci.low), float(ci.high)


def _space(entry: Mapping) -> str:
    shape = "x".join(str(d) for d in entry.get("shape", [])) or "?"
    kind = entry.get("type", "lowdim")
    units = entry.get("units") or ("0-255 pixels, stored uint8 HWC" if kind == "rgb" else "not recorded")
    return f"`{shape}` {kind}; units: {units}" + (f"; {entry['description']}" if entry.get("description") else "")


def _data_summary(dataset: Mapping) -> str:
    path = dataset.get("path")
    if not path:
        return "not recorded in the checkpoint"
    line = f"`{path}`"
    try:
        from robodiff.data.replay_buffer import ReplayBuffer

        rb = ReplayBuffer.open(path, mode="r")
        line += f": {rb.n_episodes} episodes, {rb.n_steps} steps"
    except Exception as exc:  # a card is still worth writing when the data is elsewhere
        line += f" (not readable from {os.getcwd()}: {type(exc).__name__})"
    split = {k: dataset[k] for k in ("val_ratio", "max_train_episodes", "seed") if k in dataset}
    return line + (f"; split {json.dumps(split)}" if split else "")


def _flat(d: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for k, v in d.items():
        if isinstance(v, Mapping):
            out += _flat(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def model_card(cfg: Mapping, metrics: Mapping, command: str | None = None) -> str:
    """The card's markdown text."""
    task = cfg.get("task", {})
    meta = task.get("shape_meta", {})
    policy = cfg.get("policy", {})
    training = cfg.get("training", {})
    name = cfg.get("name") or f"{task.get('name', 'task')}-{cfg.get('policy_name', 'policy')}"
    lines = [f"# {name}", "", f"Diffusion policy `{cfg.get('policy_name') or policy.get('denoiser', '?')}` for task "
             f"`{task.get('name', '?')}`, checkpoint `{metrics.get('checkpoint', '?')}` "
             f"({metrics.get('weights', '?')} weights).", "", "## Observation and action spaces", ""]
    for k, v in meta.get("obs", {}).items():
        lines.append(f"- observation `{k}`: {_space(v)}")
    if "action" in meta:
        lines.append(f"- action: {_space(meta['action'])}")
    lines += ["", "## Training data", "",
              f"- dataset: {_data_summary(task.get('dataset', {}))}",
              f"- trained for {metrics.get('train_step', '?')} optimizer steps ({metrics.get('train_epoch', '?')} "
              "epochs)", "", "## Recipe", "",
              f"- windows: horizon {cfg.get('horizon', policy.get('horizon'))}, "
              f"{cfg.get('n_obs_steps', policy.get('n_obs_steps'))} observation steps, "
              f"{cfg.get('n_action_steps', policy.get('n_action_steps'))} actions executed per chunk"]
    lines += [f"- policy.{k}: `{json.dumps(v)}`" for k, v in _flat(policy)
              if k.split(".")[0] not in ("horizon", "n_obs_steps", "n_action_steps")]
    lines += [f"- training.{k}: `{json.dumps(training[k])}`" for k in RECIPE_KEYS if training.get(k) is not None]
    if training.get("ema"):
        lines.append(f"- training.ema: `{json.dumps(training['ema'])}`")
    lines += ["", "## Evaluation", ""]
    per_seed = metrics.get("per_seed") or []
    if per_seed:
        seeds = [r["seed"] for r in per_seed]
        m, lo, hi = score_interval([r["max_reward"] for r in per_seed])
        s, slo, shi = success_interval([bool(r["success"]) for r in per_seed])
        lines += [f"- score (mean over seeds of the episode's max reward): **{m:.3f}** (95% CI {lo:.3f}-{hi:.3f})",
                  f"- success rate: **{s:.2f}** (95% Wilson CI {slo:.2f}-{shi:.2f})",
                  f"- {len(per_seed)} seeds, {min(seeds)}-{max(seeds)}"]
    else:
        lines.append(f"- score {metrics.get('mean_score')}, success {metrics.get('success_rate')} "
                     "(no per-seed results, so no interval)")
    lines.append(f"- sampler: {metrics.get('sampler', '?')} with {metrics.get('steps', '?')} denoising steps; "
                 f"latency {metrics.get('latency_ms_per_chunk', float('nan')):.0f} ms per action chunk on "
                 f"{metrics.get('device', '?')}")
    if command:
        lines += ["", "## Reproduce this evaluation", "", "```bash", command, "```"]
    return "\n".join(lines) + "\n"


def write_card(path: str | os.PathLike, cfg: Mapping, metrics: Mapping, command: str | None = None) -> Path:
    """Write :func:`model_card` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(model_card(cfg, metrics, command))
    os.replace(tmp, path)
    return path
