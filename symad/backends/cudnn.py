"""``symad.backends.cudnn``: cuDNN is not available; its flags are accepted and do nothing.

Programs set ``torch.backends.cudnn.deterministic = True`` / ``benchmark = False`` for
reproducibility; symad's CPU results are deterministic already.
"""
from __future__ import annotations

enabled = True
deterministic = False
benchmark = False
allow_tf32 = True


def is_available() -> bool:
    """False: symad has no cuDNN."""
    return False


def version() -> None:
    """None, as PyTorch returns when cuDNN is not available."""
    return
