"""DiffusionPolicy: normalizer + observation encoder + denoiser + scheduler, with receding-horizon chunking.

One class for every denoiser x observation x conditioning combination (see ``policies.config``). Dict in,
dict out, in dataset units: the normalizer inside the policy maps observations and actions to the
denoiser's [-1, 1] space and back, and is saved in the policy's state_dict.

    policy = make_policy(cfg, shape_meta); policy.set_normalizer(normalizer)
    loss = policy.compute_loss(batch)                 # batch: {"obs": {k: (B, >=To, *shape)}, "action": (B, H, Da)}
    out = policy.predict_action(obs)                  # {"action": (B, Na, Da), "action_pred": (B, H, Da)}
    policy.reset(); a = policy.select_action(obs_step)  # one step at a time: (B, *shape) -> (B, Da)
"""

from __future__ import annotations

import collections
import contextlib
from typing import Any, Mapping

import torch
from torch import nn

from policies.config import PolicyConfig
from robodiff.data import LinearNormalizer
from robodiff.diffusion import diffusion_loss, make_scheduler, sample
from robodiff.models import ConditionalUnet1D, ObsEncoder, TransformerForDiffusion


class PolicyInputError(ValueError):
    """An observation dict or batch that does not match the policy's shape_meta."""


class DiffusionPolicy(nn.Module):
    """Predicts a chunk of ``horizon`` actions from the last ``n_obs_steps`` observations (build with
    ``policies.make_policy``). Submodules: ``normalizer``, ``obs_encoder``, ``denoiser``; schedulers:
    ``noise_scheduler`` (training, DDPM) and ``sampler`` (inference, see ``set_sampler``)."""

    def __init__(self, cfg: PolicyConfig, shape_meta: Mapping[str, Any]):
        super().__init__()
        self.obs_shapes = cfg.check_shape_meta(shape_meta)
        self.cfg = cfg
        self.shape_meta = {"obs": {k: {"shape": list(s), "type": t} for k, (s, t) in self.obs_shapes.items()},
                           "action": {"shape": [int(shape_meta["action"]["shape"][0])]}}
        self.horizon, self.n_obs_steps, self.n_action_steps = cfg.horizon, cfg.n_obs_steps, cfg.n_action_steps
        self.action_dim = self.shape_meta["action"]["shape"][0]

        self.normalizer = LinearNormalizer()
        enc = cfg.obs_encoder
        self.obs_encoder = ObsEncoder(self.obs_shapes, enc.backbone, enc.crop_shape, enc.num_keypoints,
                                      enc.feature_dim, enc.resize_shape)
        feat = self.obs_encoder.feature_dim
        inpaint = cfg.conditioning == "inpaint"
        # inpainting: the trajectory carries [action, obs features]; global: actions only, features condition
        self.x_dim = self.action_dim + (feat if inpaint else 0)
        if cfg.denoiser == "unet":
            u = cfg.unet
            self.denoiser = ConditionalUnet1D(self.x_dim, 0 if inpaint else feat * cfg.n_obs_steps, u.down_dims,
                                              u.kernel_size, u.n_groups, u.step_embed_dim)
        else:
            tr = cfg.transformer
            self.denoiser = TransformerForDiffusion(self.x_dim, cfg.horizon, 0 if inpaint else feat,
                                                    cfg.n_obs_steps, tr.n_layer, tr.n_head, tr.n_emb,
                                                    tr.p_drop_emb, tr.p_drop_attn, tr.causal_attn)
        self.noise_scheduler = make_scheduler("ddpm", **vars(cfg.noise))  # training: the forward process
        self.set_sampler(cfg.sampler.name, cfg.sampler.steps, cfg.sampler.eta)
        self.reset()

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> dict[str, Any]:
        """Plain dict that rebuilds this policy: ``make_policy(policy.config, policy.shape_meta)``."""
        return self.cfg.to_dict()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def set_normalizer(self, normalizer: LinearNormalizer) -> None:
        needed = ["action", *self.obs_shapes]
        missing = [k for k in needed if k not in normalizer]
        if missing:
            raise PolicyInputError(f"normalizer lacks keys {missing}; fit it on {needed} (set_image for rgb keys)")
        fresh = LinearNormalizer()
        fresh.load_state_dict(normalizer.state_dict())
        self.normalizer = fresh.to(self.device)

    def set_sampler(self, name: str, steps: int, eta: float | None = None) -> None:
        """Choose the inference scheduler and its number of steps, independently of training (DDPM-100)."""
        eta = self.cfg.sampler.eta if eta is None else eta
        self.sampler = make_scheduler(name, **vars(self.cfg.noise), eta=eta)
        self.sampler.set_timesteps(steps)  # validates steps against the training horizon
        self.cfg.sampler.name, self.cfg.sampler.steps, self.cfg.sampler.eta = name, int(steps), eta

    # ------------------------------------------------------------------ input checks
    def _check_obs(self, obs: Mapping[str, torch.Tensor], what: str, per_step: bool = False) -> int:
        """Raise PolicyInputError unless every observation is (B, >= n_obs_steps, *shape) -- or (B, *shape)
        for a single step -- with one batch size B; returns B."""
        if not isinstance(obs, Mapping):
            raise PolicyInputError(f"{what} must be a dict of tensors keyed by {list(self.obs_shapes)}")
        lead = ["B"] if per_step else ["B", f">= {self.n_obs_steps}"]
        batch = None
        for key, (shape, typ) in self.obs_shapes.items():
            expected = f"({', '.join(lead + [str(s) for s in shape])})"
            if key not in obs:
                raise PolicyInputError(f"{what} is missing observation {key!r}; expected {expected} "
                                       f"(keys present: {list(obs)})")
            x = obs[key]
            if not torch.is_tensor(x) or x.ndim != len(lead) + len(shape) or tuple(x.shape[len(lead):]) != shape:
                got = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
                raise PolicyInputError(f"{what}[{key!r}] has shape {got}; expected {expected}")
            if typ == "rgb" and not x.is_floating_point():
                raise PolicyInputError(f"{what}[{key!r}] is {x.dtype}; images must be float in [0, 1] "
                                       f"(divide uint8 images by 255)")
            if not per_step and x.shape[1] < self.n_obs_steps:
                raise PolicyInputError(f"{what}[{key!r}] has {x.shape[1]} steps of history; the policy needs "
                                       f"n_obs_steps={self.n_obs_steps}: expected {expected}")
            if batch is not None and x.shape[0] != batch:
                raise PolicyInputError(f"{what}[{key!r}] has batch size {x.shape[0]}, others have {batch}")
            batch = x.shape[0]
        return batch

    # ------------------------------------------------------------------ core
    def _features(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Normalized, encoded observations (B, To, F) from raw (B, To, *shape)."""
        B, To = next(iter(obs.values())).shape[:2]
        nobs = self.normalizer.normalize({k: obs[k].to(self.device, torch.float32) for k in self.obs_shapes})
        flat = {k: v.reshape(B * To, *v.shape[2:]) for k, v in nobs.items()}
        return self.obs_encoder(flat).reshape(B, To, -1)

    def _layout(self, feats: torch.Tensor, naction: torch.Tensor | None):
        """(trajectory x0 or template, denoiser cond, given entries, given mask) for this conditioning."""
        B, To, F = feats.shape
        if self.cfg.conditioning == "global":
            return naction, feats, None, None
        x = feats.new_zeros(B, self.horizon, self.x_dim)
        if naction is not None:
            x[..., : self.action_dim] = naction
        # observation features sit in the first To rows; rows after are zeros; all of it is given
        x[:, :To, self.action_dim:] = feats
        mask = torch.zeros(1, 1, self.x_dim, dtype=torch.bool, device=x.device)
        mask[..., self.action_dim:] = True
        return x, None, x, mask

    def compute_loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Denoising loss on a batch ``{"obs": {k: (B, >=To, *shape)}, "action": (B, horizon, Da)}``.

        The first n_obs_steps observation steps are the ones aligned with the chunk's first actions.
        """
        if "obs" not in batch or "action" not in batch:
            raise PolicyInputError(f"batch needs 'obs' and 'action'; got keys {list(batch)}")
        B = self._check_obs(batch["obs"], "batch['obs']")
        action = batch["action"]
        if tuple(action.shape) != (B, self.horizon, self.action_dim):
            raise PolicyInputError(f"batch['action'] has shape {tuple(action.shape)}; expected "
                                   f"(B={B}, horizon={self.horizon}, {self.action_dim})")
        obs = {k: batch["obs"][k][:, : self.n_obs_steps] for k in self.obs_shapes}
        naction = self.normalizer["action"].normalize(action.to(self.device, torch.float32))
        x0, cond, _, mask = self._layout(self._features(obs), naction)
        return diffusion_loss(self.denoiser, x0, cond, self.noise_scheduler, given_mask=mask)

    @torch.no_grad()
    def predict_action(self, obs_dict: Mapping[str, torch.Tensor],
                       generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Sample a chunk from the last n_obs_steps observations (dataset units, (B, >=To, *shape)).

        Returns ``action`` (B, n_action_steps, Da), the actions to execute now (chunk steps To-1 ...), and
        ``action_pred`` (B, horizon, Da), the whole chunk. Always samples in eval mode (center crop, no
        dropout); the module's mode is restored afterwards.
        """
        B = self._check_obs(obs_dict, "obs_dict")
        obs = {k: obs_dict[k][:, -self.n_obs_steps:] for k in self.obs_shapes}
        with _eval_mode(self):
            template, cond, given, mask = self._layout(self._features(obs), None)
            x = sample(self.denoiser, (B, self.horizon, self.x_dim), cond, self.sampler, self.cfg.sampler.steps,
                       generator, given=given, given_mask=mask, device=self.device)
        action_pred = self.normalizer["action"].unnormalize(x[..., : self.action_dim])
        start = self.n_obs_steps - 1
        return {"action": action_pred[:, start: start + self.n_action_steps], "action_pred": action_pred}

    # ------------------------------------------------------------------ step-by-step control
    def reset(self) -> None:
        """Forget the observation history and queued actions (call at every episode start)."""
        self._obs_history: collections.deque = collections.deque(maxlen=self.n_obs_steps)
        self._action_queue: collections.deque = collections.deque()

    def select_action(self, obs_step: Mapping[str, torch.Tensor],
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """One observation per key (B, *shape) in, one action (B, Da) out.

        A chunk is sampled when the queue is empty, i.e. every n_action_steps calls; its n_action_steps
        executable actions are queued. At an episode's start the history is padded with copies of the first
        observation.
        """
        self._check_obs(obs_step, "obs_step", per_step=True)
        step = {k: obs_step[k] for k in self.obs_shapes}
        if not self._obs_history:
            self._obs_history.extend([step] * self.n_obs_steps)
        else:
            self._obs_history.append(step)
        if not self._action_queue:
            obs = {k: torch.stack([h[k] for h in self._obs_history], dim=1) for k in self.obs_shapes}
            actions = self.predict_action(obs, generator)["action"]  # (B, Na, Da)
            self._action_queue.extend(actions.unbind(dim=1))
        return self._action_queue.popleft()


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
