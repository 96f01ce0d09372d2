"""Denoisers and observation encoders: shapes, the shared call signature, horizon errors, masking, vision."""

import pytest
import torch

from robodiff.models import ConditionalUnet1D, ObsEncoder, TransformerForDiffusion


pytestmark = pytest.mark.usefixtures("one_thread")


def count(m):
    return sum(p.numel() for p in m.parameters())


def test_unet_shapes_and_reference_size():
    net = ConditionalUnet1D(2, global_cond_dim=40, down_dims=[32, 64, 128], kernel_size=5, n_groups=8,
                            step_embed_dim=32)
    x, t, cond = torch.randn(3, 16, 2), torch.tensor([0, 50, 99]), torch.randn(3, 2, 20)
    assert net(x, t, cond).shape == (3, 16, 2)
    assert net(x, t, cond.reshape(3, 40)).shape == (3, 16, 2)  # flat or per-step condition
    # the reference lowdim PushT configuration: ~65.8M parameters
    big = ConditionalUnet1D(2, global_cond_dim=40, down_dims=[256, 512, 1024])
    assert 65.0e6 < count(big) < 66.5e6


def test_unet_condition_changes_the_output():
    torch.manual_seed(0)
    net = ConditionalUnet1D(2, global_cond_dim=4, down_dims=[16, 32], step_embed_dim=16)
    x, t = torch.randn(2, 8, 2), torch.tensor([3, 3])
    a, b = net(x, t, torch.zeros(2, 4)), net(x, t, torch.ones(2, 4))
    assert not torch.allclose(a, b)
    assert not torch.allclose(net(x, t + 40, torch.zeros(2, 4)), a)  # and so does the step


def test_unet_horizon_that_does_not_fit_the_levels_is_a_clear_error():
    net = ConditionalUnet1D(2, down_dims=[16, 32, 64], step_embed_dim=16)
    with pytest.raises(ValueError, match=r"horizon 10 .*divisible by 2\*\*2=4.*use horizon 12"):
        net(torch.randn(1, 10, 2), torch.tensor([1]))
    with pytest.raises(ValueError, match="n_groups"):
        ConditionalUnet1D(2, down_dims=[12, 32])
    with pytest.raises(ValueError, match=r"cond \(B, 40\)"):
        ConditionalUnet1D(2, global_cond_dim=40, down_dims=[16, 32])(torch.randn(1, 8, 2), torch.tensor([1]))


@torch.no_grad()
def test_transformer_shapes_size_and_causality():
    torch.manual_seed(0)
    net = TransformerForDiffusion(2, horizon=16, cond_dim=20, n_obs_steps=2, n_layer=2, n_head=2, n_emb=32,
                                  causal_attn=True).eval()
    x, t, cond = torch.randn(3, 16, 2), torch.tensor([1, 2, 3]), torch.randn(3, 2, 20)
    y = net(x, t, cond)
    assert y.shape == (3, 16, 2)
    later = x.clone()
    later[:, 10:] += 1.0  # future actions do not affect earlier outputs
    diff = (net(later, t, cond) - y).abs().amax(dim=(0, 2))
    assert float(diff[:10].max()) == 0.0 and float(diff[10:].max()) > 0
    obs = cond.clone()
    obs[:, 1] += 1.0  # observation 1 is visible from action 0 on (memory token s <= i + 1)
    diff = (net(x, t, obs) - y).abs().amax(dim=(0, 2))
    assert float(diff.max()) > 0
    # reference size (8 layers, 4 heads, 256 wide): ~9.0M parameters
    ref = TransformerForDiffusion(2, horizon=16, cond_dim=20, n_obs_steps=2)
    assert 8.9e6 < count(ref) < 9.1e6


def test_transformer_without_condition_and_bad_cond():
    net = TransformerForDiffusion(4, horizon=8, cond_dim=0, n_layer=1, n_head=2, n_emb=16, causal_attn=False)
    assert net(torch.randn(2, 8, 4), torch.tensor([5, 6]), None).shape == (2, 8, 4)
    cond_net = TransformerForDiffusion(4, horizon=8, cond_dim=6, n_obs_steps=2, n_layer=1, n_head=2, n_emb=16)
    with pytest.raises(ValueError, match=r"cond \(B, <= 2, 6\)"):
        cond_net(torch.randn(2, 8, 4), torch.tensor([5, 6]), torch.randn(2, 3, 6))


@pytest.mark.parametrize("backbone", ["robomimic", "resnet18"])
def test_obs_encoder_images_and_lowdim(backbone):
    torch.manual_seed(0)
    enc = ObsEncoder({"image": ((3, 40, 40), "rgb"), "agent_pos": ((2,), "lowdim")}, backbone=backbone,
                     crop_shape=(36, 36), num_keypoints=8, feature_dim=16)
    assert enc.feature_dim == 18
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules()), "BatchNorm must become GroupNorm"
    assert any(isinstance(m, torch.nn.GroupNorm) for m in enc.modules())
    obs = {"image": torch.rand(4, 3, 40, 40) * 2 - 1, "agent_pos": torch.randn(4, 2)}
    feats = enc(obs)
    assert feats.shape == (4, 18)
    torch.testing.assert_close(feats[:, 16:], obs["agent_pos"])  # low-dim passes through, after the images
    enc.eval()
    assert torch.equal(enc(obs), enc(obs)), "evaluation must center-crop deterministically"
    enc.train()
    torch.manual_seed(1)
    a = enc(obs)
    torch.manual_seed(2)
    assert not torch.allclose(a, enc(obs)), "training must crop at random"


def test_robomimic_encoder_uses_spatial_softmax_keypoints():
    from robomimic.models.base_nets import SpatialSoftmax

    enc = ObsEncoder({"image": ((3, 96, 96), "rgb")}, crop_shape=(84, 84), num_keypoints=32, feature_dim=64)
    soft = [m for m in enc.modules() if isinstance(m, SpatialSoftmax)]
    assert len(soft) == 1 and soft[0]._num_kp == 32
    with pytest.raises(ValueError, match="crop_shape"):
        ObsEncoder({"image": ((3, 32, 32), "rgb")}, crop_shape=(84, 84))
