"""Image decoding and the train / eval views of face crops, on uint8 arrays, for single frames and clips.

Training view (the paper's augmentation, done right): resize the crop to ``round(1.2 * size)`` pixels, then a
random ``size x size`` crop and a horizontal flip with probability 1/2, drawn anew for every sample at every
call from torch's global RNG. DataLoader seeds torch's RNG in each worker from the loader's base seed, so a
seeded loader gives reproducible views while every epoch still sees new ones. A clip ``[L, S, S, 3]`` gets one
view: the same crop and flip for all of its frames. Eval view: the center crop of the same resized image.

Both views end in a float tensor ``[3, size, size]`` (clips ``[L, 3, size, size]``), scaled to [0, 1] and then
normalised with ``(x - mean) / std`` when ``normalize`` is given (ImageNet statistics by default, matching
torchvision's pretrained backbones).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from affect_data.faces import IMAGE_ERRORS

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
RESIZE_SCALE = 1.2


def resized_size(size: int, scale: float = RESIZE_SCALE) -> int:
    """Side of the resized image that a ``size`` crop is cut from: ``round(scale * size)`` (112 -> 134)."""
    return round(scale * size)


def load_image(path: str | os.PathLike, size: int) -> np.ndarray:
    """Decode an image file to an RGB uint8 array of shape ``(size, size, 3)``, resized if needed.

    Resizing uses PIL's bilinear filter (with antialiasing when shrinking). The crop cache stores exactly what
    this returns, so cached and decoded pixels are equal.

    Raises
    ------
    OSError
        Naming the file when it is missing, not an image, corrupt or truncated.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "face.png"
    >>> Image.new("RGB", (100, 80), (200, 120, 90)).save(path)
    >>> load_image(path, 134).shape
    (134, 134, 3)
    """
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")  # decodes the whole file: truncation surfaces here
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.array(image, dtype=np.uint8)  # a writable copy, safe to hand to torch
    except IMAGE_ERRORS as err:
        raise OSError(f"cannot read image {os.fspath(path)}: {err}") from err


class FrameTransform:
    """The training (random) or evaluation (center) view of resized uint8 crops.

    Parameters
    ----------
    size : int, default 112
        Side of the output crop.
    train : bool, default True
        Random crop and flip (True) or center crop (False).
    normalize : (mean, std) pair of 3-sequences, or None
        Per-channel statistics on the [0, 1] scale; None leaves values in [0, 1].
    scale : float, default 1.2
        Inputs must be ``round(scale * size)`` pixels square.

    Examples
    --------
    >>> t = FrameTransform(size=4, train=False, normalize=None, scale=1.5)
    >>> t(np.zeros((6, 6, 3), dtype=np.uint8)).shape
    torch.Size([3, 4, 4])
    """

    def __init__(
        self,
        size: int = 112,
        train: bool = True,
        normalize: tuple[Sequence[float], Sequence[float]] | None = (IMAGENET_MEAN, IMAGENET_STD),
        scale: float = RESIZE_SCALE,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if not scale >= 1:
            raise ValueError(f"scale must be at least 1 (crops are cut from the resized image), got {scale}")
        self.size = size
        self.train = train
        self.input_size = resized_size(size, scale)
        if normalize is None:
            self._scale = torch.full((3, 1, 1), 1 / 255)
            self._shift = torch.zeros((3, 1, 1))
        else:
            mean, std = (torch.as_tensor(v, dtype=torch.float32) for v in normalize)
            if mean.shape != (3,) or std.shape != (3,) or (std <= 0).any():
                raise ValueError(
                    f"normalize must be (mean, std) with 3 values each, std > 0; got {normalize}"
                )
            # (x / 255 - mean) / std == x * scale - shift: one multiply-add per pixel.
            self._scale = (1 / (255 * std)).view(3, 1, 1)
            self._shift = (mean / std).view(3, 1, 1)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """Crop (and flip) ``images`` of shape ``(S, S, 3)`` or ``(L, S, S, 3)``; one view for all frames."""
        side = self.input_size
        if images.shape[-3:] != (side, side, 3):
            raise ValueError(
                f"expected images of shape (..., {side}, {side}, 3) for {self.size} px crops; "
                f"got {tuple(images.shape)}"
            )
        top, left, flip = self.draw_view()
        crop = images[..., top : top + self.size, left : left + self.size, :]
        if flip:
            crop = crop[..., ::-1, :]
        # One strided copy gives contiguous CHW (clips: LCHW) uint8; the float math then runs on contiguous
        # memory, about twice as fast as normalising a channels-last view.
        leading = tuple(range(crop.ndim - 3))
        chw = np.ascontiguousarray(crop.transpose(*leading, crop.ndim - 1, crop.ndim - 3, crop.ndim - 2))
        return torch.from_numpy(chw).float().mul_(self._scale).sub_(self._shift)

    def draw_view(self) -> tuple[int, int, bool]:
        """The crop's top-left corner and whether to flip: random in training, the center in evaluation."""
        margin = self.input_size - self.size
        if not self.train:
            return margin // 2, margin // 2, False
        # One draw over every (top, left, flip) combination: each equally likely, one RNG call per sample.
        draw = int(torch.randint(0, 2 * (margin + 1) ** 2, ()))
        position, flip = divmod(draw, 2)
        top, left = divmod(position, margin + 1)
        return top, left, bool(flip)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, train={self.train}, input_size={self.input_size})"
