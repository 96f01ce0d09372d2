"""The diffusion core: the scheduler contract (once, for every scheduler), spacing, sampling loop, loss."""

import pytest
import torch
from diffusers import DDIMScheduler

from robodiff.diffusion import (
    SCHEDULER_NAMES,
    NoiseScheduler,
    diffusion_loss,
    make_scheduler,
    sample,
)

PREDICTION_TYPES = ["epsilon", "sample", "v"]
T = 100


def make_x0(shape=(4, 8, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 1.6 - 0.8


class Oracle:
    """A perfect denoiser for one known x0: outputs the exact training target at (x_t, t); records its calls."""

    def __init__(self, scheduler, x0):
        self.s, self.x0, self.eps_seen, self.t_seen = scheduler, x0, [], []

    def __call__(self, x, t, cond):
        a = self.s.alphas_cumprod[t].view(-1, *([1] * (x.ndim - 1)))
        eps = (x - a.sqrt() * self.x0) / (1 - a).sqrt()
        self.eps_seen.append(eps)
        self.t_seen.append(int(t[0]))
        return self.s.training_target(self.x0, eps, t)


# ---------------------------------------------------------------- the contract, once for every scheduler
@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 5, 10, 16, 100])
def test_contract_timesteps_start_at_last_training_step(name, steps):
    s = make_scheduler(name, num_train_timesteps=T)
    assert isinstance(s, NoiseScheduler)
    if steps > s.max_steps:  # lcm samples on its consistency grid only (T // 5 points)
        with pytest.raises(ValueError, match=f"in \\[1, {s.max_steps}\\]"):
            s.set_timesteps(steps)
        return
    ts = s.set_timesteps(steps)
    assert ts.dtype == torch.int64 and len(ts) == steps
    assert int(ts[0]) == T - 1, f"{name}-{steps} starts at t={int(ts[0])}, not at the last training step"
    assert bool((ts[1:] < ts[:-1]).all()), "timesteps must strictly decrease"
    assert int(ts[-1]) >= 0


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("steps", [5, 16])
def test_contract_perfect_denoiser_recovers_x0(name, prediction_type, steps):
    """With the exact target at every step, every scheduler lands on x0 and visits its listed timesteps."""
    s = make_scheduler(name, prediction_type=prediction_type)
    x0 = make_x0()
    oracle = Oracle(s, x0)
    out = sample(oracle, x0.shape, None, s, steps, torch.Generator().manual_seed(1))
    assert out.shape == x0.shape
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)
    assert oracle.t_seen == s.set_timesteps(steps).tolist()


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_contract_training_target_and_add_noise(name, prediction_type):
    s = make_scheduler(name, prediction_type=prediction_type)
    x0, eps = make_x0(seed=2), make_x0(seed=3)
    t = torch.tensor([0, 10, 50, 99])
    x_t = s.add_noise(x0, eps, t)
    a = s.alphas_cumprod[t].view(-1, 1, 1)
    torch.testing.assert_close(x_t, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    target = s.training_target(x0, eps, t)
    expected = {"epsilon": eps, "sample": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction_type]
    torch.testing.assert_close(target, expected)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_contract_clip_sample_bounds_the_result(name):
    """A denoiser claiming x0 = 5 everywhere is clipped to 1 with clip_sample, not without."""
    def far(x, t, cond):
        return torch.full_like(x, 5.0)

    clipped = sample(far, (2, 4, 2), None, make_scheduler(name, prediction_type="sample", clip_sample=True), 8,
                     torch.Generator().manual_seed(0))
    free = sample(far, (2, 4, 2), None, make_scheduler(name, prediction_type="sample", clip_sample=False), 8,
                  torch.Generator().manual_seed(0))
    assert clipped.abs().max() <= 1.0 + 1e-4  # lcm adds c_skip(t) * x_t ~ 1e-5 x_t at its last step
    assert free.abs().max() > 4.0


def test_unknown_names_are_rejected_with_choices():
    with pytest.raises(ValueError, match="ddim"):
        make_scheduler("ddim2")
    with pytest.raises(ValueError, match="epsilon"):
        make_scheduler("ddpm", prediction_type="eps")
    with pytest.raises(ValueError, match="trailing"):
        make_scheduler("ddim", timestep_spacing="leading")


# ---------------------------------------------------------------- spacing and the DDIM step
def test_ddim10_of_100_visits_99_to_9():
    s = make_scheduler("ddim")
    assert s.set_timesteps(10).tolist() == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]


def _implied_noise_drift(scheduler, steps):
    """Deterministic DDIM keeps x_t on the line sqrt(a_t) x0 + sqrt(1-a_t) eps for one fixed eps, if and
    only if each step lands on the noise level of the next visited timestep. Returns how far eps drifts."""
    x0 = make_x0()
    oracle = Oracle(scheduler, x0)
    sample(oracle, x0.shape, None, scheduler, steps, torch.Generator().manual_seed(0))
    return max(float((e - oracle.eps_seen[0]).abs().max()) for e in oracle.eps_seen)


@pytest.mark.parametrize("steps", [3, 7, 10, 16, 33])
def test_ddim_steps_to_the_next_listed_timestep(steps):
    assert _implied_noise_drift(make_scheduler("ddim", eta=0.0), steps) < 1e-3


@pytest.mark.parametrize("prediction_type", ["sample", "epsilon"])
def test_ddim_follows_the_noise_of_the_clipped_x0(prediction_type):
    """A denoiser overshooting a point on the clip boundary (x0 predicted 3x too far) is clipped back onto
    it; the step must then pair that x0 with its own noise, so x_t stays on one deterministic path (the
    implied noise is constant, as under a perfect denoiser). Pairing it with the unclipped prediction's
    noise drifted: the reason eta = 0 samples got worse with more steps."""
    x_star = torch.sign(make_x0())  # entries +-1: on the clip boundary, like the digits' black background
    s = make_scheduler("ddim", prediction_type=prediction_type, clip_sample=True)
    oracle = Oracle(s, x_star)

    def overshoot(x, t, cond):
        oracle(x, t, cond)  # records the noise x_t implies for x_star
        a = s.alphas_cumprod[t].view(-1, 1, 1)
        return s.training_target(3 * x_star, (x - a.sqrt() * 3 * x_star) / (1 - a).sqrt(), t)

    out = sample(overshoot, x_star.shape, None, s, 10, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x_star, atol=1e-5)
    assert max(float((e - oracle.eps_seen[0]).abs().max()) for e in oracle.eps_seen) < 1e-3


class _Stock(NoiseScheduler):
    """diffusers' own DDIMScheduler with trailing spacing, behind the same contract (to show the test bites)."""

    num_train_timesteps, prediction_type = T, "epsilon"

    def __init__(self):
        self.impl = DDIMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2", clip_sample=False,
                                  timestep_spacing="trailing")
        self.alphas_cumprod = self.impl.alphas_cumprod

    def set_timesteps(self, n, device=None):
        self.impl.set_timesteps(n, device)
        return self.impl.timesteps

    def step(self, out, t, x, generator=None):
        return self.impl.step(out, t, x).prev_sample

    def add_noise(self, x0, noise, t):
        return self.impl.add_noise(x0, noise, t)

    def training_target(self, x0, noise, t):
        return noise


def test_stock_diffusers_ddim_fails_the_spacing_check():
    """The check above detects diffusers' t - T//N step (16 of 100: 99 -> 93 -> 87 but 86 is listed)."""
    assert _implied_noise_drift(_Stock(), 16) > 1e-2


# ---------------------------------------------------------------- the sampling loop
def test_ddim_eta0_is_deterministic_for_a_fixed_generator():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))

    def denoiser(x, t, cond):
        return net(x) * (t.view(-1, 1, 1) / T)

    s = make_scheduler("ddim", eta=0.0)
    a = sample(denoiser, (2, 8, 3), None, s, 10, torch.Generator().manual_seed(5))
    b = sample(denoiser, (2, 8, 3), None, s, 10, torch.Generator().manual_seed(5))
    c = sample(denoiser, (2, 8, 3), None, s, 10, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # eta > 0 injects fresh noise at every step: still reproducible from the generator, but a different sample
    noisy = make_scheduler("ddim", eta=1.0)
    d = sample(denoiser, (2, 8, 3), None, noisy, 10, torch.Generator().manual_seed(5))
    assert torch.equal(d, sample(denoiser, (2, 8, 3), None, noisy, 10, torch.Generator().manual_seed(5)))
    assert not torch.allclose(a, d)


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_inpainting_keeps_given_entries_exactly(name):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 3)
    seen_given = []
    given = make_x0(seed=7)
    mask = torch.zeros(4, 8, 3, dtype=torch.bool)
    mask[:, :2, :] = True  # first two steps given
    mask[:, :, 2] = True  # and a whole feature

    def denoiser(x, t, cond):
        seen_given.append(torch.equal(x[mask], given[mask]))
        return net(x)

    out = sample(denoiser, given.shape, None, make_scheduler(name), 6, torch.Generator().manual_seed(0),
                 given=given, given_mask=mask)
    assert torch.equal(out[mask], given[mask])
    assert all(seen_given), "the denoiser must see the given entries at every step"
    assert not torch.allclose(out[~mask], given[~mask])


def test_classifier_free_guidance_combines_outputs():
    """eps_u + w (eps_c - eps_u) with a denoiser whose output is its condition: equals uncond + w (c - u)."""
    def denoiser(x, t, cond):
        return cond.expand_as(x)

    c, u, w = torch.full((2, 1, 1), 0.3), torch.full((2, 1, 1), -0.1), 3.0
    s = make_scheduler("ddim", prediction_type="sample", clip_sample=False)
    out = sample(denoiser, (2, 4, 1), c, s, 4, torch.Generator().manual_seed(0), guidance_scale=w, uncond=u)
    torch.testing.assert_close(out, torch.full((2, 4, 1), -0.1 + 3.0 * 0.4))
    with pytest.raises(ValueError, match="uncond"):
        sample(denoiser, (2, 4, 1), c, s, 4, guidance_scale=w)


# ---------------------------------------------------------------- the loss
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_loss_is_zero_for_the_perfect_denoiser(prediction_type):
    s = make_scheduler("ddpm", prediction_type=prediction_type)
    x0 = make_x0()
    loss = diffusion_loss(Oracle(s, x0), x0, None, s, generator=torch.Generator().manual_seed(0))
    assert float(loss) < 1e-8
    wrong = diffusion_loss(lambda x, t, c: torch.zeros_like(x), x0, None, s)
    assert float(wrong) > 1e-3


def test_loss_mask_keeps_given_entries_clean_and_ignores_them():
    s = make_scheduler("ddpm")
    x0 = make_x0()
    mask = torch.zeros(1, 8, 3, dtype=torch.bool)
    mask[..., 2] = True
    seen = {}

    def denoiser(x, t, cond):
        seen["x"] = x
        out = torch.zeros_like(x)
        out[..., 2] = 1e3  # huge error on given entries only: must not count
        return out

    loss = diffusion_loss(denoiser, x0, None, s, given_mask=mask)
    assert torch.equal(seen["x"][..., 2], x0[..., 2])
    assert float(loss) < 10.0  # ~ E[eps^2] = 1 over the free entries
