"""Lookahead (Zhang et al. 2019): slow weights that the fast ones are pulled back to every k steps.

Every ``sync_period`` optimisation steps, ``slow += step_size * (fast - slow)`` and then the fast
weights (the model's) are set to the slow ones. With ``schedule="cubic"`` the step size starts at 1
(the slow weights simply follow) and falls to ``slow_step_size`` as ``(step / total)^3``: airbench's
lookahead, which averages hard only near the end, where the learning rate is low. After the last
step the model keeps the slow weights. As in airbench, the slow copy covers every floating-point
tensor of the model's state: the weights and batchnorm's moving statistics, which then match them.
TF Addons' ``Lookahead(sync_period, slow_step_size)`` names the two options.
"""

from __future__ import annotations

import torch


class Lookahead:
    """The slow copy of a model's floating-point state, pulled towards the model every ``sync_period`` steps."""

    def __init__(self, model: torch.nn.Module, sync_period: int, slow_step_size: float, schedule: str = "constant",
                 total_steps: int = 1):
        self.sync_period, self.slow_step_size, self.schedule = sync_period, slow_step_size, schedule
        self.total_steps, self.steps = max(total_steps, 1), 0
        self.slow = [tensor.detach().clone() for tensor in _state(model)]

    def step_size(self, step: int) -> float:
        """The share of the way from slow to fast taken at ``step`` (steps done, counted from 1)."""
        if self.schedule == "cubic":
            return 1.0 - (1.0 - self.slow_step_size) * min(step / self.total_steps, 1.0) ** 3
        return self.slow_step_size

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """After an optimisation step: every ``sync_period`` steps, move slow towards fast and fast to slow
        (fused ops, no host sync)."""
        self.steps += 1
        if self.steps % self.sync_period:
            return
        fast = _state(model)
        torch._foreach_lerp_(self.slow, fast, self.step_size(self.steps))
        torch._foreach_copy_(fast, self.slow)

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """The model takes the slow weights (the end of training)."""
        torch._foreach_copy_(_state(model), self.slow)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "slow": list(self.slow)}

    def load_state_dict(self, saved: dict) -> None:
        slow = saved["slow"]
        if len(slow) != len(self.slow) or any(a.shape != b.shape for a, b in zip(slow, self.slow)):
            raise ValueError("the saved lookahead weights do not match this network")
        self.steps = int(saved["steps"])
        with torch.no_grad():
            torch._foreach_copy_(self.slow, [tensor.to(self.slow[0].device) for tensor in slow])


def _state(model: torch.nn.Module) -> list[torch.Tensor]:
    """The model's floating-point parameters and buffers, as tensors sharing their storage."""
    return [tensor for tensor in model.state_dict().values() if tensor.is_floating_point()]


def lookahead_for(model: torch.nn.Module, config, steps_per_epoch: int) -> Lookahead | None:
    """The Lookahead ``config`` (a TrainConfig) asks for, or None."""
    if not config.lookahead_sync_period:
        return None
    return Lookahead(model, config.lookahead_sync_period, config.lookahead_slow_step_size,
                     config.lookahead_schedule, config.epochs * steps_per_epoch)
