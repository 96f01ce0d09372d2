"""Turn a robodiff policy (contract 4: ``predict_action(obs_dict)`` on (B, T, ...) tensors) into the plain
callable the runtime takes: obs dict of numpy (n_obs_steps, ...) arrays -> {"action": (1, n, Da) numpy}.

Duck-typed on purpose: any object with ``predict_action`` works, and ``real_robot`` stays free of training
code. Observation keys the policy does not use are dropped; missing ones fail with the keys named.
"""

from __future__ import annotations

import numpy as np


class PolicyAdapter:
    def __init__(self, policy, obs_keys=None, device=None):
        import torch

        self.torch = torch
        self.policy = policy
        self.obs_keys = list(obs_keys) if obs_keys is not None else None
        self.device = device or next(policy.parameters()).device
        self.n_obs_steps = int(getattr(policy, "n_obs_steps", 1))
        if hasattr(policy, "reset"):
            policy.reset()

    def __call__(self, obs: dict) -> dict:
        torch = self.torch
        keys = self.obs_keys or [k for k in obs if not k.startswith("_") and k != "timestamp"]
        missing = [k for k in keys if k not in obs]
        if missing:
            raise KeyError(f"policy needs observation keys {missing}; the station provides {sorted(obs)}")
        batch = {k: torch.as_tensor(np.asarray(obs[k])[-self.n_obs_steps:], dtype=torch.float32,
                                    device=self.device)[None] for k in keys}
        with torch.inference_mode():
            out = self.policy.predict_action(batch)
        return {"action": out["action"].detach().cpu().numpy()}
