"""Sample quality measured with a digit classifier trained here (no published DDPM FID exists for these
digits): the accuracy of class-conditional samples, and the Frechet distance between samples and held-out
real digits in the classifier's feature space (FID's formula, our feature extractor). For Push-T frames, a
pose estimate (where the grey T is) checked against the caption the sample was drawn for."""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import torch

from robodiff.image.captions import cell_centre, digit_caption, grid_cell, pusht_caption
from robodiff.image.models import NUM_CLASSES, DigitClassifier, ImageDiffusion


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two feature sets (N, D)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s_a @ s_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a + s_b - 2 * root))


@torch.no_grad()
def classify(classifier: DigitClassifier, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    """(predicted labels (N,), features (N, D)) of images in [-1, 1]."""
    preds, feats = [], []
    for chunk in images.split(batch):
        f = classifier.features(chunk)
        feats.append(f)
        preds.append(classifier.head(f).argmax(-1))
    return torch.cat(preds), torch.cat(feats).double().numpy()


def sample_quality(model: ImageDiffusion, classifier: DigitClassifier, real: torch.Tensor, *, n: int = 200,
                   seed: int = 0, batch: int = 100, **generate) -> dict[str, float]:
    """Draw ``n`` samples of labels cycling 0..9 (for a caption model: "a handwritten <digit>") with
    ``model.generate(**generate)`` (``guide``: a noisy classifier, for classifier guidance to each label);
    their classifier accuracy against the label asked for, Frechet distance to ``real`` (held-out images),
    and seconds per 64 samples."""
    labels = torch.arange(n) % NUM_CLASSES
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    images = []
    for chunk in labels.split(batch):
        kw = dict(generate)
        guide = kw.pop("guide", None)  # a noisy classifier: classifier guidance towards each sample's label
        if guide is not None:
            kw["classifier_grad"] = guide.guidance(chunk)
        if model.conditioning == "caption":
            kw["captions"] = [digit_caption(y) for y in chunk]
        else:
            kw["labels"] = chunk
        images.append(model.generate(len(chunk), generator=gen, **kw))
    seconds = time.perf_counter() - t0
    images = torch.cat(images)
    pred, feats = classify(classifier, images)
    _, real_feats = classify(classifier, real)
    return {"accuracy": float((pred == labels).float().mean()), "frechet": frechet_distance(feats, real_feats),
            "sec_per_64": seconds / n * 64, "n": n}


def t_cell(images: torch.Tensor) -> np.ndarray:
    """The 3x3 grid cell (as the captions name it) of the T in Push-T frames (N, 3, S, S) in [-1, 1].

    A colour rule, no model: the block is slate grey (119, 136, 153), so its pixels are bluer than red and
    green, but far less than the royal-blue agent (blue - red 160); the green goal has green above blue. The
    cell is that of the centroid of those pixels, weighted by blue - red (so edge pixels blended with the
    white board count less). On the 513 held-out frames of the reference data at 32 px it names the
    caption's cell for 93% (the rest lie on cell borders, where the caption uses the keypoint centre)."""
    rgb = (images.float().clamp(-1, 1) + 1) * 127.5
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    blue = b - r
    w = torch.where((blue >= 12) & (b - g >= 6) & (blue < 90), blue, torch.zeros_like(blue))
    size = images.shape[-1]
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    total = w.sum((1, 2)).clamp_min(1e-6)
    cx, cy = (w * xs).sum((1, 2)) / total, (w * ys).sum((1, 2)) / total
    return grid_cell(cx.numpy(), cy.numpy(), size)


def caption_agreement(model: ImageDiffusion, *, n_per_cell: int = 16, seed: int = 0, batch: int = 72,
                      **generate) -> dict:
    """Draw ``n_per_cell`` Push-T samples for each of the 9 positions a caption can name (angles cycling
    over the 8 the captions know) and return how often :func:`t_cell` puts the T where the caption said
    (chance: 1/9), per cell too, and seconds per 64 samples."""
    cells = np.repeat(np.arange(9), n_per_cell)
    angles = np.deg2rad(45.0 * (np.arange(len(cells)) % 8))
    captions = [pusht_caption(*cell_centre(c), a) for c, a in zip(cells, angles)]
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    images = torch.cat([model.generate(len(chunk), captions=chunk, generator=gen, **generate)
                        for chunk in (captions[i:i + batch] for i in range(0, len(captions), batch))])
    seconds = time.perf_counter() - t0
    hit = t_cell(images) == cells
    return {"agreement": float(hit.mean()), "chance": 1 / 9, "n": len(cells), "sec_per_64": seconds / len(cells) * 64,
            "per_cell": [float(hit[cells == c].mean()) for c in range(9)], "images": images}
