"""What image diffusion adds to the shared core: learned variance and the exact bound, classifier guidance,
dynamic thresholding, the denoising trajectory. Toy cases with known answers; no image model needed."""

import math

import pytest
import torch

from robodiff.diffusion import SCHEDULER_NAMES, bits_per_dim, diffusion_loss, make_scheduler, sample
from robodiff.diffusion.losses import HYBRID_VLB_WEIGHT

T = 50


def quantised(x: torch.Tensor) -> torch.Tensor:
    """x rounded to the 256 levels of 8-bit data in [-1, 1]."""
    return (((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5) - 1


def test_bound_of_a_perfect_denoiser_is_prior_plus_decoder(one_thread):
    """For one known image the true reverse step is q(x_{t-1}|x_t,x_0) itself: every KL term is 0, what is
    left is the prior term and the decoder's -log p(x_0|x_1)."""
    s = make_scheduler("ddpm", num_train_timesteps=T, beta_schedule="linear", beta_end=0.2)
    x0 = quantised(torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 1.6 - 0.8)  # no edge bins

    def oracle(x, t, cond):
        a = s.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    bpd = bits_per_dim(oracle, x0, None, s, generator=torch.Generator().manual_seed(1))
    assert bpd["terms"][1:].abs().max() < 1e-4
    assert torch.isfinite(bpd["total"]).all()
    torch.testing.assert_close(bpd["total"], bpd["terms"][0] + bpd["prior"])
    # decoder: N(x0, beta-tilde_1) integrated over x0's bin of half-width 1/255
    a0, a1 = s.alphas_cumprod[0].double(), s.alphas_cumprod[1].double()
    sd = ((1 - a1 / a0) * (1 - a0) / (1 - a1)).sqrt()
    expected = -torch.log2(torch.erf(1 / 255 / (sd * math.sqrt(2)))).float()
    torch.testing.assert_close(bpd["terms"][0], expected.expand(2), rtol=1e-4, atol=1e-4)


class GaussianDenoiser(torch.nn.Module):
    """The exact noise prediction for data ~ N(0, sd^2 I); with ``learned``, a per-timestep variance output v
    (one parameter per t) as a second channel."""

    def __init__(self, scheduler, sd: float, learned: bool):
        super().__init__()
        self.s, self.sd, self.learned = scheduler, sd, learned
        self.v = torch.nn.Embedding(scheduler.num_train_timesteps, 1)
        torch.nn.init.zeros_(self.v.weight)

    def forward(self, x, t, cond):
        a = self.s.alphas_cumprod[t].view(-1, 1, 1)
        x0_hat = a.sqrt() * self.sd**2 * x / (a * self.sd**2 + 1 - a)
        eps = (x - a.sqrt() * x0_hat) / (1 - a).sqrt()
        if not self.learned:
            return eps
        return torch.cat([eps, self.v(t).view(-1, 1, 1).expand_as(x).tanh()], dim=1)


def test_learned_variance_lowers_the_bound_below_fixed_variance(one_thread):
    """Improved DDPM on a toy case: with the same (exact) mean, a variance trained by the hybrid loss gives a
    finite bound in bits/dim below the fixed beta-tilde model's."""
    gen = torch.Generator().manual_seed(0)
    sd = 0.4
    data = quantised(torch.randn(4096, 1, 4, generator=gen) * sd)
    fixed_s = make_scheduler("ddpm", num_train_timesteps=T)
    learned_s = make_scheduler("ddpm", num_train_timesteps=T, variance_type="learned_range")
    fixed, learned = GaussianDenoiser(fixed_s, sd, False), GaussianDenoiser(learned_s, sd, True)
    opt = torch.optim.Adam(learned.parameters(), lr=0.05)
    for step in range(150):
        batch = data[torch.randint(0, len(data), (512,), generator=gen)]
        loss = diffusion_loss(learned, batch, None, learned_s, vlb_weight=HYBRID_VLB_WEIGHT, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    held_out = quantised(torch.randn(1024, 1, 4, generator=gen) * sd)
    b_fixed = bits_per_dim(fixed, held_out, None, fixed_s, generator=torch.Generator().manual_seed(3))
    b_learned = bits_per_dim(learned, held_out, None, learned_s, generator=torch.Generator().manual_seed(3))
    fixed_bpd, learned_bpd = b_fixed["total"].mean().item(), b_learned["total"].mean().item()
    assert math.isfinite(learned_bpd) and math.isfinite(fixed_bpd)
    assert learned_bpd < fixed_bpd - 0.05, (learned_bpd, fixed_bpd)


def test_learned_variance_needs_the_bound_in_the_loss():
    s = make_scheduler("ddpm", num_train_timesteps=T, variance_type="learned_range")
    with pytest.raises(ValueError, match="vlb_weight"):
        diffusion_loss(lambda x, t, c: torch.cat([x, x], 1), torch.zeros(2, 1, 4), None, s)
    with pytest.raises(ValueError, match="2x the data's channels"):
        diffusion_loss(lambda x, t, c: x, torch.zeros(2, 1, 4), None, s, vlb_weight=1e-3)
    with pytest.raises(ValueError, match="variance_type"):
        make_scheduler("ddpm", variance_type="learned")


def test_learned_variance_sets_the_ddpm_noise_and_is_ignored_by_ddim():
    """A model claiming x0 = 0: v = +1 samples with beta_t (more noise), v = -1 with beta-tilde_t; DDIM
    and DPM-Solver (no variance in their step) give the same result for both."""
    def denoiser(v):
        return lambda x, t, c: torch.cat([torch.zeros_like(x), torch.full_like(x, v)], dim=1)

    def run(name, v):
        s = make_scheduler(name, num_train_timesteps=T, variance_type="learned_range", prediction_type="sample",
                           clip_sample=False)
        return sample(denoiser(v), (256, 1, 4), None, s, 10, torch.Generator().manual_seed(0))

    assert run("ddpm", 1.0).std() > 1.05 * run("ddpm", -1.0).std()
    for name in ("ddim", "dpmsolver"):
        torch.testing.assert_close(run(name, 1.0), run(name, -1.0))


def test_classifier_free_guidance_leaves_the_variance_half_alone():
    seen = []

    def denoiser(x, t, cond):
        return torch.cat([cond.expand_as(x), torch.full_like(x, 0.5)], dim=1)

    class Spy:
        def __init__(self, s):
            self.s = s

        def __getattr__(self, name):
            return getattr(self.s, name)

        def step(self, out, t, x, generator=None):
            seen.append(out)
            return self.s.step(out, t, x, generator=generator)

    s = Spy(make_scheduler("ddim", num_train_timesteps=T, variance_type="learned_range", prediction_type="sample"))
    sample(denoiser, (2, 1, 3), torch.full((2, 1, 1), 0.3), s, 3, guidance_scale=3.0,
           uncond=torch.full((2, 1, 1), -0.1))
    torch.testing.assert_close(seen[0][:, :1], torch.full((2, 1, 3), -0.1 + 3.0 * 0.4))
    torch.testing.assert_close(seen[0][:, 1:], torch.full((2, 1, 3), 0.5))


# ---------------------------------------------------------------- classifier guidance on a known mixture
MODES = torch.tensor([-0.6, 0.6])


def mixture_denoiser(scheduler):
    """The exact eps for data = +-0.6 with equal weight (x of shape (B, 1, 1))."""
    def denoiser(x, t, cond):
        a = scheduler.alphas_cumprod[t].view(-1, 1, 1)
        logits = -(x - a.sqrt() * MODES) ** 2 / (2 * (1 - a))  # (B, 1, 2)
        x0 = (logits.softmax(-1) * MODES).sum(-1, keepdim=True)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return denoiser


def mixture_classifier_grad(scheduler, label):
    """grad_x log p(y = label | x_t) of the exact noisy classifier of that mixture, by autograd."""
    def grad(x, t):
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            a = scheduler.alphas_cumprod[t].view(-1, 1, 1)
            logits = -(x - a.sqrt() * MODES) ** 2 / (2 * (1 - a))
            logp = logits.log_softmax(-1)[..., label].sum()
            return torch.autograd.grad(logp, x)[0]
    return grad


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_classifier_guidance_raises_class_accuracy_on_a_mixture(name):
    s = make_scheduler(name, num_train_timesteps=100, clip_sample=False)
    den = mixture_denoiser(s)

    def accuracy(scale):
        x = sample(den, (400, 1, 1), None, s, 20, torch.Generator().manual_seed(0),
                   classifier_grad=mixture_classifier_grad(s, 1), classifier_scale=scale)
        return float((x > 0).float().mean())

    plain, guided = accuracy(0.0), accuracy(4.0)
    assert 0.35 < plain < 0.65, plain
    assert guided > 0.95, guided
    with pytest.raises(ValueError, match="classifier_grad"):
        sample(den, (2, 1, 1), None, s, 2, classifier_scale=1.0)


# ---------------------------------------------------------------- dynamic thresholding
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_dynamic_thresholding_rescales_predictions_into_range(name):
    """A denoiser claiming x0 = 5 (e.g. over-guided) lands within [-1, 1] with Imagen's dynamic thresholding,
    and far outside without any clipping."""
    def far(x, t, cond):
        return torch.full_like(x, 5.0)

    dyn = make_scheduler(name, prediction_type="sample", clip_sample=False, dynamic_threshold=0.995)
    free = make_scheduler(name, prediction_type="sample", clip_sample=False)
    assert sample(far, (2, 1, 8), None, dyn, 8, torch.Generator().manual_seed(0)).abs().max() <= 1.0 + 1e-4
    assert sample(far, (2, 1, 8), None, free, 8, torch.Generator().manual_seed(0)).abs().max() > 4.0
    with pytest.raises(ValueError, match="quantile"):
        make_scheduler(name, dynamic_threshold=99.5)


def test_trajectory_records_every_visited_level():
    s = make_scheduler("ddim", num_train_timesteps=T)
    traj = []
    out = sample(lambda x, t, c: torch.zeros_like(x), (2, 1, 3), None, s, 5, trajectory=traj)
    assert len(traj) == 6 and torch.equal(traj[-1], out)
