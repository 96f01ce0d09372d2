"""Run logs: JSON lines and TensorBoard always, Weights & Biases when installed and enabled; a PNG of curves.

``logs.jsonl`` is the source of truth (one object per logged step, appended, so a resumed run continues the
same file); TensorBoard and wandb mirror it; ``plot_curves`` redraws loss and eval-score curves from it.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Optional


class RunLogger:
    """Fan-out of scalar metrics to jsonl / TensorBoard / wandb. Create it on rank 0 only."""

    def __init__(self, out_dir: str | Path, config: Optional[dict] = None, tensorboard: bool = True,
                 wandb_cfg: Optional[dict] = None, resume_step: int = 0):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.out_dir / "logs.jsonl"
        if self.jsonl_path.exists():  # rows after the step we (re)start from belong to a killed run
            self._truncate_after(resume_step)
        self._jsonl = open(self.jsonl_path, "a", buffering=1)
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=resume_step)
        self._wandb = None
        if wandb_cfg and wandb_cfg.get("enabled"):
            try:
                import wandb
            except ImportError:
                warnings.warn("logging.wandb.enabled=true but wandb is not installed (pip install wandb); "
                              "logging to jsonl and TensorBoard only")
            else:
                self._wandb = wandb.init(project=wandb_cfg.get("project", "robodiff"),
                                         mode=wandb_cfg.get("mode", "offline"), dir=str(self.out_dir),
                                         name=wandb_cfg.get("name"), config=config, resume="allow",
                                         id=wandb_cfg.get("id"))

    def _truncate_after(self, step: int) -> None:
        """A resumed run restarts at ``step``: drop lines a killed run logged after its last checkpoint."""
        keep = []
        for line in self.jsonl_path.read_text().splitlines():
            try:
                if json.loads(line).get("step", -1) <= step:
                    keep.append(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
        self.jsonl_path.write_text("".join(x + "\n" for x in keep))

    def log(self, metrics: dict, step: int) -> None:
        row = {"step": int(step)}
        row.update({k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()})
        self._jsonl.write(json.dumps(row) + "\n")
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                if self._tb is not None:
                    self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_jsonl(path: str | Path) -> list:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_curves(jsonl_path: str | Path, png_path: str | Path, score_key: str = "test/mean_score") -> Path:
    """Loss (train, val) and eval score against step, from ``logs.jsonl``, into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_jsonl(jsonl_path)

    def series(key):
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        return [p[0] for p in pts], [p[1] for p in pts]

    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("train/loss", "train loss"), ("val/loss", "val loss")):
        x, y = series(key)
        if x:
            ax_loss.plot(x, y, label=label, marker="." if len(x) < 50 else None)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("diffusion loss")
    if ax_loss.lines:
        ax_loss.legend()
    for key, label, style in ((score_key, "mean score (training rollouts)", "o-"),
                              ("test/success_rate", "success rate (training rollouts)", "s--"),
                              ("eval/mean_score", "mean score (final evaluation)", "*"),
                              ("eval/success_rate", "success rate (final evaluation)", "P")):
        x, y = series(key)
        if x:
            ax_score.plot(x, y, style, label=label, markersize=12 if style in "*P" else 6)
    ax_score.set_ylim(0, 1)
    ax_score.set_xlabel("step")
    ax_score.set_title("closed-loop evaluation")
    if ax_score.lines:
        ax_score.legend()
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path
