"""Test data shared by the imbalance tests (a module name unique across the repository's test folders)."""

import numpy as np


def au_like(n: int, seed: int, shares=(0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)) -> np.ndarray:
    """A skewed multi-label matrix whose labels co-occur through a shared latent intensity (AU-like)."""
    rng = np.random.default_rng(seed)
    intensity = rng.random(n)[:, None] + 0.5
    return (rng.random((n, len(shares))) < np.asarray(shares) * intensity).astype(np.uint8)
