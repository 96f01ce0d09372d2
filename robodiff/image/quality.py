"""Sample quality measured with a digit classifier trained here (no published DDPM FID exists for these
digits): the accuracy of class-conditional samples, and the Frechet distance between samples and held-out
real digits in the classifier's feature space (FID's formula, our feature extractor)."""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import torch

from robodiff.image.captions import digit_caption
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
