"""zerosum: self-play reinforcement learning of language models on two-player zero-sum games."""

__version__ = "0.1.0"
