"""DiffusionPolicy: every combination trains and samples, multimodality, chunking, config, bad input."""

import itertools
import json

import pytest
import torch

from policies import DiffusionPolicy, PolicyConfigError, PolicyInputError, make_policy
from robodiff.data import LinearNormalizer

SHAPE_META = {
    "obs": {
        "image": {"shape": [3, 40, 40], "type": "rgb"},
        "agent_pos": {"shape": [2], "type": "lowdim"},
        "keypoint": {"shape": [20], "type": "lowdim"},
    },
    "action": {"shape": [2]},
}
OBS_TYPES = {"lowdim": ["keypoint"], "image": ["image"], "hybrid": ["image", "agent_pos"]}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(**over):
    cfg = dict(horizon=8, n_obs_steps=2, n_action_steps=4,
               unet=dict(down_dims=[16, 32], step_embed_dim=16),
               transformer=dict(n_layer=1, n_head=2, n_emb=16),
               obs_encoder=dict(crop_shape=[36, 36], num_keypoints=8, feature_dim=8),
               sampler=dict(name="ddim", steps=3))
    cfg.update(over)
    return cfg


def fitted_normalizer():
    g = torch.Generator().manual_seed(0)
    n = LinearNormalizer()
    n.fit({"action": torch.rand(64, 2, generator=g) * 512, "keypoint": torch.rand(64, 20, generator=g) * 512,
           "agent_pos": torch.rand(64, 2, generator=g) * 512})
    n.set_image("image")
    return n


def make_batch(B=3, T=2, horizon=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": {"image": torch.rand(B, T, 3, 40, 40, generator=g),
                    "agent_pos": torch.rand(B, T, 2, generator=g) * 512,
                    "keypoint": torch.rand(B, T, 20, generator=g) * 512},
            "action": torch.rand(B, horizon, 2, generator=g) * 512}


def tiny_policy(**over):
    p = make_policy(tiny_cfg(**over), SHAPE_META)
    p.set_normalizer(fitted_normalizer())
    return p


# ---------------------------------------------------------------- every combination
@pytest.mark.parametrize("denoiser,obs_type,conditioning",
                         list(itertools.product(["unet", "transformer"], OBS_TYPES, ["global", "inpaint"])))
def test_every_combination_trains_a_step_and_samples(denoiser, obs_type, conditioning):
    torch.manual_seed(0)
    p = tiny_policy(denoiser=denoiser, conditioning=conditioning, obs_keys=OBS_TYPES[obs_type])
    batch = make_batch()
    opt = torch.optim.SGD(p.parameters(), lr=1e-2)
    before = [q.detach().clone() for q in p.denoiser.parameters()]
    loss = p.compute_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, p.denoiser.parameters()))
    if obs_type != "lowdim":
        assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in p.obs_encoder.parameters())
    obs = {k: v[:, :2] for k, v in make_batch(B=2, T=3)["obs"].items()}
    out = p.predict_action(obs, generator=torch.Generator().manual_seed(0))
    assert out["action"].shape == (2, 4, 2) and out["action_pred"].shape == (2, 8, 2)
    torch.testing.assert_close(out["action"], out["action_pred"][:, 1:5])  # executed = chunk steps To-1..
    assert p.training, "predict_action restores the module's mode"


# ---------------------------------------------------------------- multimodality
@pytest.mark.slow
def test_tiny_policy_overfits_two_modes_and_samples_both():
    """Chunks are either all (100, 400) or all (400, 100) for the same observation: a regression model would
    answer the mean (250, 250); a diffusion policy must sample both modes."""
    torch.manual_seed(0)
    sm = {"obs": {"state": {"shape": [3], "type": "lowdim"}}, "action": {"shape": [2]}}
    p = make_policy(dict(horizon=8, n_obs_steps=2, n_action_steps=4, unet=dict(down_dims=[32, 64], step_embed_dim=32),
                         sampler=dict(name="ddim", steps=10)), sm)
    modes = torch.tensor([[100.0, 400.0], [400.0, 100.0]])
    obs = torch.tensor([1.0, 2.0, 3.0]).expand(1, 2, 3)

    def batch(B):
        act = modes[torch.randint(0, 2, (B,))][:, None, :] + torch.randn(B, 8, 2) * 5
        return {"obs": {"state": obs.expand(B, 2, 3)}, "action": act}

    norm = LinearNormalizer()
    data = batch(512)
    norm.fit({"action": data["action"].reshape(-1, 2), "state": data["obs"]["state"].reshape(-1, 3)})
    p.set_normalizer(norm)
    opt = torch.optim.AdamW(p.parameters(), lr=1e-3)
    for _ in range(400):
        loss = p.compute_loss(batch(128))
        opt.zero_grad()
        loss.backward()
        opt.step()
    chunk = p.predict_action({"state": obs.expand(200, 2, 3)}, generator=torch.Generator().manual_seed(0))
    dist = (chunk["action_pred"][:, None] - modes[None, :, None, :]).norm(dim=-1).mean(-1)  # (200, 2) px
    nearest = dist.argmin(1)
    share = float((nearest == 0).float().mean())
    assert 0.25 < share < 0.75, f"samples cover one mode only: {share:.2f} at mode 0"
    assert float((dist.min(1).values < 40).float().mean()) > 0.8, "samples fall between the modes"


# ---------------------------------------------------------------- samplers
def test_sampler_is_chosen_at_inference_independently_of_training():
    p = tiny_policy()
    calls = []
    p.denoiser.register_forward_hook(lambda m, i, o: calls.append(int(i[1][0])))
    obs = make_batch(B=1)["obs"]
    for name, steps in [("ddpm", 100), ("ddim", 16), ("dpmsolver", 5)]:
        calls.clear()
        p.set_sampler(name, steps)
        out = p.predict_action(obs, generator=torch.Generator().manual_seed(0))
        assert out["action_pred"].shape == (1, 8, 2) and torch.isfinite(out["action_pred"]).all()
        assert len(calls) == steps and calls[0] == 99
        assert p.config["sampler"]["name"] == name and p.config["sampler"]["steps"] == steps
    assert p.noise_scheduler.num_train_timesteps == 100
    with pytest.raises(ValueError, match="num_inference_steps"):
        p.set_sampler("ddim", 101)


def test_ddim_policy_is_deterministic_for_a_fixed_generator():
    p = tiny_policy(sampler=dict(name="ddim", steps=4, eta=0.0))
    obs = make_batch(B=2)["obs"]
    a = p.predict_action(obs, generator=torch.Generator().manual_seed(3))["action_pred"]
    b = p.predict_action(obs, generator=torch.Generator().manual_seed(3))["action_pred"]
    c = p.predict_action(obs, generator=torch.Generator().manual_seed(4))["action_pred"]
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---------------------------------------------------------------- config and checkpoint round trip
def test_config_is_plain_json_and_rebuilds_the_policy_with_its_normalizer():
    p = tiny_policy(denoiser="transformer", obs_keys=["image", "agent_pos"])
    cfg = json.loads(json.dumps(p.config))
    state = p.state_dict()
    assert any("normalizer" in k for k in state), "the normalizer is saved with the policy"
    q = make_policy(cfg, json.loads(json.dumps(p.shape_meta)))
    q.load_state_dict(state)
    obs = make_batch(B=2)["obs"]
    a = p.predict_action(obs, generator=torch.Generator().manual_seed(0))["action_pred"]
    b = q.predict_action(obs, generator=torch.Generator().manual_seed(0))["action_pred"]
    torch.testing.assert_close(a, b)
    assert isinstance(q, DiffusionPolicy) and q.config == p.config


@pytest.mark.parametrize("over,match", [
    (dict(denoiser="cnn"), r"denoiser='cnn' is not one of \['unet', 'transformer'\]"),
    (dict(conditioning="local"), "conditioning"),
    (dict(horizon=9), r"horizon=9 does not fit unet.down_dims=\[16, 32\].*divisible by 2"),
    (dict(n_action_steps=8), r"exceeds horizon=8"),
    (dict(sampler=dict(name="ddim", steps=500)), r"sampler.steps must be in \[1, .*100\]"),
    (dict(sampler=dict(name="euler")), r"sampler.name='euler'"),
    (dict(horizn=16), r"unknown config key policy.horizn; did you mean 'horizon'"),
    (dict(unet=dict(down_dim=[16])), r"unknown config key policy.unet.down_dim; did you mean 'down_dims'"),
    (dict(obs_keys=["img"]), r"obs_keys names 'img'.*available: \['image', 'agent_pos', 'keypoint'\]"),
    (dict(obs_encoder=dict(backbone="vit")), r"backbone='vit'"),
])
def test_bad_configs_are_rejected_up_front(over, match):
    with pytest.raises(PolicyConfigError, match=match):
        make_policy(tiny_cfg(**over), SHAPE_META)


# ---------------------------------------------------------------- step-by-step control
def test_select_action_replans_every_n_action_steps_and_pads_history():
    p = tiny_policy(obs_keys=["keypoint"])
    seen, chunks = [], []
    predict = p.predict_action

    def spy(obs, generator=None):  # records the real call and its result
        seen.append({k: v.clone() for k, v in obs.items()})
        out = predict(obs, generator)
        chunks.append(out["action"])
        return out

    p.predict_action = spy
    steps = [{"keypoint": torch.full((2, 20), float(i))} for i in range(10)]
    actions = [p.select_action(s) for s in steps]
    assert len(seen) == 3  # steps 0, 4, 8 with n_action_steps=4
    assert all(a.shape == (2, 2) for a in actions)
    # padding at episode start: the first history is the first observation twice
    assert torch.equal(seen[0]["keypoint"], torch.zeros(2, 2, 20))
    # later plans see the last n_obs_steps observations
    assert torch.equal(seen[1]["keypoint"][0, :, 0], torch.tensor([3.0, 4.0]))
    assert torch.equal(seen[2]["keypoint"][0, :, 0], torch.tensor([7.0, 8.0]))
    # the queue hands out the planned chunk's actions in order
    for i, a in enumerate(actions):
        assert torch.equal(a, chunks[i // 4][:, i % 4])
    p.reset()
    p.select_action(steps[5])
    assert len(seen) == 4 and torch.equal(seen[3]["keypoint"][0, :, 0], torch.tensor([5.0, 5.0]))


# ---------------------------------------------------------------- bad input
def test_bad_observations_name_the_key_and_expected_shape():
    p = tiny_policy(obs_keys=["image", "agent_pos"])
    obs = make_batch(B=2)["obs"]
    missing = {k: v for k, v in obs.items() if k != "agent_pos"}
    with pytest.raises(PolicyInputError, match=r"missing observation 'agent_pos'; expected \(B, >= 2, 2\)"):
        p.predict_action(missing)
    wrong = dict(obs, image=torch.rand(2, 2, 3, 96, 96))
    with pytest.raises(PolicyInputError,
                       match=r"\['image'\] has shape \(2, 2, 3, 96, 96\); expected \(B, >= 2, 3, 40, 40\)"):
        p.predict_action(wrong)
    uint8 = dict(obs, image=(obs["image"] * 255).to(torch.uint8))
    with pytest.raises(PolicyInputError, match=r"\['image'\] is torch.uint8; images must be float in \[0, 1\]"):
        p.predict_action(uint8)
    short = {k: v[:, :1] for k, v in obs.items()}
    with pytest.raises(PolicyInputError, match=r"\['image'\] has 1 steps of history; the policy needs n_obs_steps=2"):
        p.predict_action(short)
    with pytest.raises(PolicyInputError, match=r"obs_step\['agent_pos'\] has shape \(2, 1, 2\); expected \(B, 2\)"):
        p.select_action({"image": torch.rand(2, 3, 40, 40), "agent_pos": torch.rand(2, 1, 2)})
    batch = make_batch(B=2)
    with pytest.raises(PolicyInputError,
                       match=r"batch\['action'\] has shape \(2, 6, 2\); expected \(B=2, horizon=8, 2\)"):
        p.compute_loss(dict(batch, action=batch["action"][:, :6]))
    with pytest.raises(PolicyInputError, match=r"normalizer lacks keys \['agent_pos'\]"):
        n = LinearNormalizer()
        n.fit({"action": torch.rand(8, 2)})
        n.set_image("image")
        p.set_normalizer(n)
