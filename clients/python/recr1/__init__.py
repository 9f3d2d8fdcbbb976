"""recr1: the Python client of recr1d, and reward plugins in Python."""

from recr1.batches import dpo_batch, grpo_batch, sft_batch
from recr1.client import PolicyClient
from recr1.errors import (Code, DeadlineExceeded, FailedPrecondition, Internal, InvalidArgument, NotFound,
                          PermissionDenied, RecR1Error, ResourceExhausted, Unauthenticated, Unavailable,
                          Unimplemented)
from recr1.reward import RewardItem, serve_reward
from recr1.rewards.remote import RewardClient
from recr1.transport import default_address

__version__ = "0.1.0"

__all__ = [
    "PolicyClient", "grpo_batch", "dpo_batch", "sft_batch", "serve_reward", "RewardItem", "RewardClient",
    "default_address", "Code", "RecR1Error", "InvalidArgument",
    "DeadlineExceeded", "NotFound", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Unauthenticated",
    "Unimplemented", "Internal", "Unavailable",
]
