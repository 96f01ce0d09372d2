"""Image diffusion on digits and Push-T frames: train the suite with the one trainer, then measure the table.

    python scripts/bench_image.py train   [--out outputs/image_bench] [--steps-scale 1.0] [--runs a,b,...]
    python scripts/bench_image.py measure [--out outputs/image_bench] [--n 200]
    python scripts/bench_image.py table   [--out outputs/image_bench]      # markdown of results.jsonl

``train`` runs, one after another (each resumable, each skipped once finished): the digit classifier, the
class-conditional pixel model with fixed and with learned variance, the noisy classifier, the VAE, the
latent model, the caption model, and a caption model on the reference's Push-T frames. Every run has a
step budget, not a wall-time one, so the comparisons are at equal training whatever the machine's speed or
load (``--runs`` picks a subset, e.g. two processes for two cores; the latent run needs the VAE's).
``measure`` appends one JSON line per table row to results.jsonl as it goes (cheap rows first), so a
partial run still leaves numbers; Push-T sample grids go beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from envs.pusht.protocol import REFERENCE_ZARR
from robodiff.image import load_image_model, train_image
from robodiff.image.captions import cell_phrase
from robodiff.image.cli import save_png
from robodiff.image.data import make_image_dataset
from robodiff.image.quality import caption_agreement, classify, frechet_distance, sample_quality, t_cell

UNET = {"channels": [16, 32], "attention": [False, True]}  # ~0.2M parameters: sized for a shared CPU
TRAIN = {"batch_size": 32, "lr": 1.0e-3, "lr_scheduler": "cosine", "num_threads": 1, "progress": False}
DENOISER_STEPS = 4000  # the same budget for every denoiser: fixed vs learned variance, pixel vs latent, caption
# name -> (optimizer steps, config)
RUNS = {
    "classifier": (1500, {"model": {"kind": "classifier"}}),
    "pixel_fixed": (DENOISER_STEPS, {"model": {"conditioning": "class", **UNET}}),
    "pixel_learned": (DENOISER_STEPS, {"model": {"conditioning": "class", **UNET},
                                       "diffusion": {"variance_type": "learned_range"}}),
    "noisy_classifier": (3000, {"model": {"kind": "noisy_classifier"}}),
    "vae": (800, {"model": {"kind": "vae", "vae": {"latent_channels": 2}}}),  # 16x16x1 -> 8x8x2
    "latent": (DENOISER_STEPS, {"model": {"conditioning": "class", **UNET, "latent": "vae"}}),
    "caption": (DENOISER_STEPS, {"model": {"conditioning": "caption", **UNET}}),
    # text-to-image on the reference's Push-T frames (every 10th, 32 px RGB): cross-attention at 8x8 only
    "pusht_caption": (2500, {"data": {"name": str(REFERENCE_ZARR), "size": 32},
                             "model": {"conditioning": "caption", "channels": [16, 32, 32],
                                       "attention": [False, False, True]}}),
}


def run_config(out: Path, name: str, scale: float) -> dict:
    steps, cfg = RUNS[name]
    cfg = json.loads(json.dumps(cfg))
    if cfg["model"].get("latent") == "vae":
        vae_ckpt = out / "vae" / "checkpoints" / "latest.ckpt"
        _, vae = load_image_model(vae_ckpt)
        cfg["model"]["latent"] = {"vae_checkpoint": str(vae_ckpt), "vae": {"vae": vae["config"]["model"]["vae"]}}
    done = (out / name / "checkpoints" / "latest.ckpt").exists()
    cfg.update(output_dir=str(out / name), seed=0, device="cpu",
               training={**TRAIN, "max_steps": max(1, round(steps * scale)), "resume": done})
    return cfg


def cmd_train(args) -> None:
    torch.set_num_threads(1)
    names = args.runs.split(",") if args.runs else list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        raise SystemExit(f"unknown runs {unknown}; choose from {', '.join(RUNS)}")
    for name in names:
        marker = args.out / name / "DONE"
        if marker.exists():
            continue
        t0 = time.time()
        res = train_image(run_config(args.out, name, args.steps_scale))
        marker.write_text(json.dumps({"step": res.step, "minutes": (time.time() - t0) / 60, **res.metrics}))
        print(f"{name}: {res.step} steps, {res.metrics}", flush=True)


def _row(path: Path, **row) -> None:
    row["date"] = time.strftime("%Y-%m-%d %H:%M")
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(row, flush=True)


def cmd_measure(args) -> None:
    torch.set_num_threads(1)
    results = args.out / "results.jsonl"
    done = {json.loads(line)["row"] for line in results.read_text().splitlines()} if results.exists() else set()
    ckpt = lambda name: args.out / name / "checkpoints" / "latest.ckpt"  # noqa: E731
    clf, _ = load_image_model(ckpt("classifier"))
    noisy, _ = load_image_model(ckpt("noisy_classifier"))
    val = make_image_dataset({"name": "digits"}).get_validation_dataset()
    real = val.__getitems__(range(len(val)))
    models = {name: load_image_model(ckpt(name))[0] for name in ("pixel_fixed", "pixel_learned", "latent", "caption")}

    def measure(row: str, model: str, **gen) -> None:
        if row in done:
            return
        q = sample_quality(models[model], clf, real["image"], n=args.n, **gen)
        _row(results, row=row, model=model, **{k: v for k, v in gen.items() if k != "guide"}, **q)

    row = "real training digits vs held-out (the floor at this n)"
    if row not in done:
        train = make_image_dataset({"name": "digits"})
        feats = classify(clf, train.__getitems__(range(args.n))["image"])[1]
        _row(results, row=row, frechet=frechet_distance(feats, classify(clf, real["image"])[1]), n=args.n)
    w = 3.0
    # the sampler x steps grid (cheap first; DDPM-1000 last)
    for model in ("pixel_fixed", "pixel_learned"):
        for sampler, steps in (("ddim", 10), ("dpmsolver", 10), ("ddim", 20), ("ddim", 50), ("ddpm", 50),
                               ("ddim", 100)):
            measure(f"{model} {sampler}-{steps} w={w}", model, sampler=sampler, steps=steps, guidance=w)
    for steps in (10, 20, 50):
        measure(f"latent ddim-{steps} w={w}", "latent", sampler="ddim", steps=steps, guidance=w)
    measure(f"latent dpmsolver-10 w={w}", "latent", sampler="dpmsolver", steps=10, guidance=w)
    for g in (0.0, 1.0, 2.0, 3.0, 5.0):
        measure(f"pixel_fixed cfg w={g} ddim-20", "pixel_fixed", sampler="ddim", steps=20, guidance=g)
    measure("pixel_fixed cfg w=5 ddim-20 dynamic-threshold", "pixel_fixed", sampler="ddim", steps=20, guidance=5.0,
            dynamic_threshold=0.995)
    for s in (1.0, 3.0, 10.0):
        measure(f"pixel_fixed classifier s={s} (unconditional) ddim-20", "pixel_fixed", sampler="ddim", steps=20,
                guidance=0.0, guide=noisy, classifier_scale=s)
    measure("pixel_fixed classifier s=3 + cfg w=1 ddim-20", "pixel_fixed", sampler="ddim", steps=20, guidance=1.0,
            guide=noisy, classifier_scale=3.0)
    for steps in (20, 100):  # stochastic DDIM (eta = 1) beside the deterministic rows above
        measure(f"pixel_fixed ddim-{steps} eta=1 w={w}", "pixel_fixed", sampler="ddim", steps=steps, guidance=w, eta=1.0)
    for g in (1.0, 3.0):
        measure(f"caption w={g} ddim-20", "caption", sampler="ddim", steps=20, guidance=g)
    pusht = ckpt("pusht_caption")
    if pusht.exists():
        model, cfg = load_image_model(pusht)
        frames = make_image_dataset(cfg["config"]["data"]).get_validation_dataset()
        row = "pusht real frames: pose estimate vs caption"
        if row not in done:
            where = t_cell(frames.__getitems__(range(len(frames)))["image"])
            hits = [f"the T is {cell_phrase(int(c))}," in caption for c, caption in zip(where, frames.captions)]
            _row(results, row=row, agreement=sum(hits) / len(hits), n=len(hits))
        for g in (0.0, 1.0, 3.0):
            row = f"pusht_caption w={g} ddim-20"
            if row not in done:
                q = caption_agreement(model, sampler="ddim", steps=20, guidance=g)
                save_png(q.pop("images"), args.out / f"pusht_caption_w{g:g}.png", nrow=16)
                _row(results, row=row, model="pusht_caption", sampler="ddim", steps=20, guidance=g, **q)
    for model in ("pixel_fixed", "pixel_learned"):
        row = f"{model} bits/dim"
        if row not in done:
            m = models[model]
            n = args.bpd_images
            batch = {k: v[:n] for k, v in real.items()}
            t0 = time.perf_counter()
            bpd = m.bits_per_dim(batch, generator=torch.Generator().manual_seed(0), progress=True)
            _row(results, row=row, model=model, bits_per_dim=float(bpd["total"].mean()),
                 prior=float(bpd["prior"].mean()), decoder=float(bpd["terms"][0].mean()), n=n,
                 seconds=time.perf_counter() - t0)
    measure(f"pixel_fixed ddim-1000 w={w}", "pixel_fixed", sampler="ddim", steps=1000, guidance=w)
    measure(f"pixel_fixed ddpm-1000 w={w}", "pixel_fixed", sampler="ddpm", steps=1000, guidance=w)
    measure(f"pixel_learned ddpm-1000 w={w}", "pixel_learned", sampler="ddpm", steps=1000, guidance=w)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads 1")


def cmd_table(args) -> None:
    rows = [json.loads(line) for line in (args.out / "results.jsonl").read_text().splitlines()]
    fmt = lambda r, key, spec: format(r[key], spec) if key in r else ""  # noqa: E731
    print("| row | s / 64 samples | accuracy (Push-T: T where the caption says) | Frechet | bits/dim |\n"
          "|---|---|---|---|---|")
    for r in rows:
        hit = fmt(r, "accuracy", ".3f") or fmt(r, "agreement", ".3f")
        print(f"| {r['row']} (n={r['n']}) | {fmt(r, 'sec_per_64', '.2f')} | {hit} | {fmt(r, 'frechet', '.1f')} | "
              f"{fmt(r, 'bits_per_dim', '.2f')} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["train", "measure", "table"])
    p.add_argument("--out", type=Path, default=Path("outputs/image_bench"))
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every run's optimizer steps")
    p.add_argument("--runs", default=None, help=f"train only these, comma-separated (of {', '.join(RUNS)})")
    p.add_argument("--n", type=int, default=200, help="samples per quality row (labels cycle 0..9)")
    p.add_argument("--bpd-images", type=int, default=32, help="held-out images for the exact bound")
    args = p.parse_args()
    {"train": cmd_train, "measure": cmd_measure, "table": cmd_table}[args.stage](args)


if __name__ == "__main__":
    main()
