"""LinearNormalizer: exact inverse, constant features, save/load inside a module's state_dict."""

import numpy as np
import pytest
import torch

from robodiff.data import LinearNormalizer


@pytest.mark.parametrize("mode", ["limits", "gaussian"])
def test_inverse_and_range(mode):
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 500, (1000, 4)).astype(np.float32)
    x[:, 2] = 7.0  # a constant dimension
    norm = LinearNormalizer().fit({"x": x}, mode=mode)
    y = norm["x"].normalize(torch.from_numpy(x))
    assert torch.isfinite(y).all()
    if mode == "limits":
        assert y[:, [0, 1, 3]].min() >= -1 - 1e-6 and y[:, [0, 1, 3]].max() <= 1 + 1e-6
        assert torch.allclose(y[:, [0, 1, 3]].amin(0), torch.tensor(-1.0)) and torch.allclose(y[:, [0, 1, 3]].amax(0), torch.tensor(1.0))
    else:
        assert torch.allclose(y[:, [0, 1, 3]].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(y[:, 2], torch.zeros(1000))  # constant dims are centred, not divided by ~0
    back = norm["x"].unnormalize(y)
    torch.testing.assert_close(back, torch.from_numpy(x), rtol=1e-5, atol=1e-3)


def test_dict_api_image_identity_and_broadcast():
    norm = LinearNormalizer().fit({"obs": np.arange(20.0).reshape(10, 2)})
    norm.set_image("image")
    norm.set_identity("raw")
    batch = {"obs": torch.ones(3, 2, 2), "image": torch.full((3, 2, 3, 4, 4), 0.5), "raw": torch.randn(3)}
    out = norm.normalize(batch)
    assert out["obs"].shape == (3, 2, 2)
    assert torch.allclose(out["image"], torch.zeros(1))
    assert torch.equal(out["raw"], batch["raw"])
    back = norm.unnormalize(out)
    torch.testing.assert_close(back["obs"], batch["obs"])
    with pytest.raises(KeyError, match="no key 'missing'.*fit on"):
        norm["missing"]


def test_saved_with_owner_state_dict():
    class Owner(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.normalizer = LinearNormalizer()
            self.lin = torch.nn.Linear(2, 2)

    a = Owner()
    a.normalizer.fit({"action": np.random.default_rng(1).normal(size=(50, 2)), "agent.pos": np.ones((5, 2))})
    a.normalizer.set_image("image")
    b = Owner()
    b.load_state_dict(a.state_dict())  # keys are created on load
    assert sorted(b.normalizer.keys()) == ["action", "agent.pos", "image"]
    x = torch.randn(4, 2)
    torch.testing.assert_close(b.normalizer["action"].normalize(x), a.normalizer["action"].normalize(x))


def test_bad_fit_input():
    with pytest.raises(ValueError, match="'a' contains NaN"):
        LinearNormalizer().fit({"a": np.array([[1.0, np.nan]])})
    with pytest.raises(ValueError, match="unknown normalizer mode"):
        LinearNormalizer().fit({"a": np.ones((3, 1))}, mode="minmax")
