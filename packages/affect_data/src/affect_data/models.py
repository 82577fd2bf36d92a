"""The paper's two architectures (Figure 4): a multitask CNN and a multitask CNN-RNN.

- :class:`MultitaskCNN` (Fig. 4a): a torchvision ResNet as the shared feature extractor, globally pooled, then
  one MLP head per task ``F -> 128 -> C`` (``AU: 8``, ``EXPR: 7``, ``VA: 40`` = 2 dimensions x 20 bins).
- :class:`MultitaskCNNRNN` (Fig. 4b): the trained CNN, frozen and always in eval mode, gives per-frame 128-d
  head features; one bidirectional GRU(128 -> 64) per task runs over the frames and a linear layer
  ``128 -> C`` gives per-frame logits. :class:`SlidingCNNRNN` runs a trained one over sliding windows of a
  video's frames (a CNN-GRU model file: :mod:`affect_data.model_file`).

Backbones share one code path (torchvision's ``ResNet`` class and forward): ``resnet50`` (the paper),
``resnet18``, and ``resnet_tiny`` - the same residual network with 1 block per stage and widths 16-32-64-128,
for CPU demos and tests. Backbone weights come from :func:`build_backbone`: ``"imagenet"``
(torchvision's weights, downloaded only when asked for), a local state-dict file, or none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

__all__ = [
    "BACKBONES",
    "PAPER_OUTPUTS",
    "MultitaskCNN",
    "MultitaskCNNRNN",
    "SlidingCNNRNN",
    "TemporalHeads",
    "build_backbone",
    "default_resnet_key_map",
    "load_backbone_weights",
]

#: Logits per task in the paper: 8 AUs, 7 expressions, 2 x 20 valence/arousal bins.
PAPER_OUTPUTS: dict[str, int] = {"AU": 8, "EXPR": 7, "VA": 40}


class _NarrowResNet(tv_resnet.ResNet):
    """torchvision's ResNet with narrower stages: same blocks, same forward, a fraction of the compute."""

    def __init__(self, widths: tuple[int, ...], layers: tuple[int, ...]) -> None:
        super().__init__(tv_resnet.BasicBlock, list(layers))
        # Rebuild the stem and the four stages at the requested widths with torchvision's own _make_layer.
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        strides = (1, 2, 2, 2)
        for i, (width, blocks, stride) in enumerate(zip(widths, layers, strides, strict=True), start=1):
            setattr(self, f"layer{i}", self._make_layer(tv_resnet.BasicBlock, width, blocks, stride=stride))
        self.fc = nn.Linear(widths[-1] * tv_resnet.BasicBlock.expansion, self.fc.out_features)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def _resnet_tiny() -> tv_resnet.ResNet:
    return _NarrowResNet(widths=(16, 32, 64, 128), layers=(1, 1, 1, 1))


#: Backbone name -> (constructor of a torchvision ResNet, torchvision ImageNet weights or None).
BACKBONES: dict[str, tuple[Callable[[], tv_resnet.ResNet], tv_resnet.WeightsEnum | None]] = {
    "resnet50": (tv_resnet.resnet50, tv_resnet.ResNet50_Weights.IMAGENET1K_V2),
    "resnet18": (tv_resnet.resnet18, tv_resnet.ResNet18_Weights.IMAGENET1K_V1),
    "resnet_tiny": (_resnet_tiny, None),
}


def default_resnet_key_map(key: str) -> str | None:
    """Map a key of a common ResNet checkpoint to torchvision's naming, or None to drop it.

    Strips the wrappers that training code adds (``module.`` from DataParallel/DDP, ``backbone.``,
    ``encoder.``, ``model.``, ``resnet.``, ``features.``) and drops the ImageNet classifier (``fc.*``), which
    the multitask model does not have.

    Examples
    --------
    >>> default_resnet_key_map("module.backbone.layer1.0.conv1.weight")
    'layer1.0.conv1.weight'
    >>> default_resnet_key_map("fc.weight") is None
    True
    """
    key = re.sub(r"^(?:(?:module|backbone|encoder|model|resnet|features)\.)+", "", key)
    if key.startswith("fc."):
        return None
    return key


def load_backbone_weights(
    backbone: nn.Module,
    path: str | os.PathLike,
    key_map: Callable[[str], str | None] = default_resnet_key_map,
    strict: bool = True,
) -> None:
    """Load a local state-dict file into a backbone, renaming keys with ``key_map``.

    The file may hold a bare state dict or one nested under ``"state_dict"`` or ``"model"`` (as training
    scripts often save). It is read with ``torch.load(..., weights_only=True)``.

    Parameters
    ----------
    backbone : nn.Module
        The torchvision ResNet built by :func:`build_backbone` (its ``fc`` is an ``Identity``).
    path : str or PathLike
        The checkpoint file.
    key_map : callable
        Maps each checkpoint key to the backbone's key, or to None to drop it.
    strict : bool
        If True, keys of the backbone missing from the file, or keys of the file that the backbone does not
        have, are an error listing them. If False they are ignored.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file holds no state dict, if keys do not match (``strict``), or if a tensor shape differs.

    Examples
    --------
    >>> import tempfile, torch
    >>> net, _ = build_backbone("resnet_tiny")
    >>> path = tempfile.mkdtemp() + "/weights.pt"
    >>> torch.save({"module." + k: v for k, v in net.state_dict().items()}, path)
    >>> load_backbone_weights(net, path)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone weights file {str(path)!r} does not exist; pass an existing state-dict file, "
            "'imagenet' for torchvision's weights, or none to start from random weights"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path}: expected a state dict (parameter name -> tensor), got {type(state).__name__}"
        )

    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new_key = key_map(key)
        if new_key is not None:
            mapped[new_key] = value
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(mapped))
    unexpected = sorted(set(mapped) - set(expected))
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path}: the checkpoint does not match the backbone after key mapping: "
            f"{len(missing)} missing key(s) {_preview(missing)}, {len(unexpected)} unexpected key(s) "
            f"{_preview(unexpected)}; pass a key_map that renames them, or strict=False to load what matches"
        )
    wrong_shapes = [
        f"{k}: file {tuple(mapped[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(mapped) & set(expected))
        if mapped[k].shape != expected[k].shape
    ]
    if wrong_shapes:
        raise ValueError(
            f"{path}: {len(wrong_shapes)} tensor(s) differ in shape (is it the same architecture?): "
            f"{_preview(wrong_shapes)}"
        )
    backbone.load_state_dict({k: v for k, v in mapped.items() if k in expected}, strict=False)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def build_backbone(name: str = "resnet50", weights: str | os.PathLike | None = None) -> tuple[nn.Module, int]:
    """Build a torchvision ResNet that maps images ``[B, 3, H, W]`` to pooled features ``[B, F]``.

    Parameters
    ----------
    name : {"resnet50", "resnet18", "resnet_tiny"}
        The architecture (see :data:`BACKBONES`).
    weights : "imagenet", a path, or None
        ``"imagenet"``: torchvision's ImageNet weights (downloaded into torch's cache on first use - the only
        download in this project, and only when asked for); a path: a local state-dict file, loaded with
        :func:`load_backbone_weights`; None: random initialisation.

    Returns
    -------
    backbone : nn.Module
        The ResNet with its classifier replaced by ``nn.Identity``.
    num_features : int
        F, the width of the pooled features (2048 for resnet50).

    Examples
    --------
    >>> import torch
    >>> net, width = build_backbone("resnet_tiny")
    >>> net(torch.zeros(2, 3, 64, 64)).shape, width
    (torch.Size([2, 128]), 128)
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    constructor, imagenet_weights = BACKBONES[name]
    backbone = constructor()
    num_features = backbone.fc.in_features
    backbone.fc = nn.Identity()
    if weights == "imagenet":
        state = _imagenet_state_dict(name, imagenet_weights)
        backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    elif weights is not None:
        load_backbone_weights(backbone, weights)
    return backbone, num_features


def _imagenet_state_dict(
    name: str, imagenet_weights: tv_resnet.WeightsEnum | None
) -> dict[str, torch.Tensor]:
    if imagenet_weights is None:
        raise ValueError(
            f"backbone {name!r} has no ImageNet weights in torchvision; use weights: null (random "
            "initialisation) or a local state-dict file"
        )
    try:
        return imagenet_weights.get_state_dict(progress=True, check_hash=True)
    except Exception as error:  # urllib/ssl/hash errors all mean the same thing to the user
        raise RuntimeError(
            f"could not get torchvision's ImageNet weights for {name} ({imagenet_weights.url}): "
            f"{type(error).__name__}: {error}. Download that file on a machine with internet access and pass "
            "its path as the weights (model.weights in the config), or use weights: null to start from "
            "random weights"
        ) from error


class MultitaskCNN(nn.Module):
    """Shared ResNet feature extractor and one MLP head per task (the paper's Figure 4a).

    Each head is ``Linear(F, 128) -> ReLU -> Dropout -> Linear(128, C)``. The paper gives only the layer
    sizes; ReLU is the usual non-linearity between two FC layers (without one the two would collapse into a
    single linear map), and dropout (default 0.2) regularises the small heads on top of a large backbone.
    The 128-d output of ``ReLU`` is what :meth:`features` returns and the CNN-RNN consumes.

    Parameters
    ----------
    backbone : str
        ``"resnet50"`` (paper), ``"resnet18"`` or ``"resnet_tiny"``.
    weights : "imagenet", a path, or None
        Backbone weights, see :func:`build_backbone`.
    num_outputs : mapping
        Task name -> number of logits; default :data:`PAPER_OUTPUTS`.
    hidden : int
        Width of the heads' hidden layer (128 in the paper).
    dropout : float
        Dropout probability before each head's last layer.

    Examples
    --------
    >>> import torch
    >>> model = MultitaskCNN("resnet_tiny")
    >>> {k: tuple(v.shape) for k, v in model(torch.zeros(2, 3, 64, 64)).items()}
    {'AU': (2, 8), 'EXPR': (2, 7), 'VA': (2, 40)}
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        weights: str | os.PathLike | None = None,
        num_outputs: Mapping[str, int] = PAPER_OUTPUTS,
        hidden: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if not num_outputs:
            raise ValueError("num_outputs must name at least one task")
        self.backbone, num_features = build_backbone(backbone, weights)
        self.num_outputs = dict(num_outputs)
        self.hidden = hidden
        self.embed = nn.ModuleDict(
            {
                task: nn.Sequential(nn.Linear(num_features, hidden), nn.ReLU(inplace=True))
                for task in num_outputs
            }
        )
        self.classify = nn.ModuleDict(
            {
                task: nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n))
                for task, n in num_outputs.items()
            }
        )

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-task 128-d head features ``[B, hidden]`` of images ``[B, 3, H, W]``."""
        pooled = self.backbone(images)
        return {task: embed(pooled) for task, embed in self.embed.items()}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task name -> logits ``[B, C]`` for images ``[B, 3, H, W]``."""
        return {task: self.classify[task](h) for task, h in self.features(images).items()}


class MultitaskCNNRNN(nn.Module):
    """A frozen multitask CNN, then one bidirectional GRU and one linear layer per task (Figure 4b).

    The CNN's parameters never receive gradients and the CNN stays in eval mode even when this module is put
    in training mode, so its batch-norm statistics and dropout do not change while the GRUs learn (the
    original code left it in train mode).

    Parameters
    ----------
    cnn : MultitaskCNN
        The trained CNN (it is frozen in place: its ``requires_grad`` flags are switched off).
    hidden : int
        GRU hidden size per direction (64 in the paper, so 128 outputs per frame).

    Examples
    --------
    >>> import torch
    >>> model = MultitaskCNNRNN(MultitaskCNN("resnet_tiny")).train()
    >>> model.cnn.training
    False
    >>> model(torch.zeros(2, 4, 3, 64, 64))["VA"].shape
    torch.Size([2, 4, 40])
    """

    def __init__(self, cnn: MultitaskCNN, hidden: int = 64) -> None:
        super().__init__()
        self.cnn = cnn.requires_grad_(False).eval()
        self.num_outputs = dict(cnn.num_outputs)
        self.rnn = nn.ModuleDict(
            {
                task: nn.GRU(cnn.hidden, hidden, batch_first=True, bidirectional=True)
                for task in self.num_outputs
            }
        )
        self.classify = nn.ModuleDict(
            {task: nn.Linear(2 * hidden, n) for task, n in self.num_outputs.items()}
        )

    def train(self, mode: bool = True) -> MultitaskCNNRNN:
        super().train(mode)
        self.cnn.eval()
        return self

    def forward(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task name -> per-frame logits ``[B, L, C]`` for clips ``[B, L, 3, H, W]``."""
        if clips.dim() != 5:
            raise ValueError(f"expected clips of shape [B, L, 3, H, W], got {tuple(clips.shape)}")
        batch, length = clips.shape[:2]
        with torch.no_grad():
            features = self.cnn.features(clips.flatten(0, 1))
        return self.forward_features({task: h.view(batch, length, -1) for task, h in features.items()})

    def forward_features(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Task name -> per-frame logits ``[B, L, C]`` from CNN head features ``{task: [B, L, hidden]}``.

        The CNN is frozen, so its features can be computed once per frame and reused (see
        :class:`TemporalHeads`).
        """
        return _temporal_heads(self.rnn, self.classify, features)


class TemporalHeads(nn.Module):
    """The trainable part of a :class:`MultitaskCNNRNN` (GRUs and output layers) on precomputed CNN features.

    Its input is one tensor ``[B, L, T, hidden]``: the frozen CNN's head features of each frame for the ``T``
    tasks, in ``model.num_outputs`` order - what a data loader can batch. Training it trains the wrapped
    CNN-RNN's GRUs in place.

    Examples
    --------
    >>> import torch
    >>> model = MultitaskCNNRNN(MultitaskCNN("resnet_tiny", hidden=16), hidden=8)
    >>> TemporalHeads(model)(torch.zeros(2, 5, 3, 16))["EXPR"].shape
    torch.Size([2, 5, 7])
    """

    def __init__(self, model: MultitaskCNNRNN) -> None:
        super().__init__()
        self.rnn = model.rnn
        self.classify = model.classify
        self.tasks = list(model.num_outputs)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task name -> per-frame logits ``[B, L, C]`` for features ``[B, L, T, hidden]``."""
        per_task = {task: features[:, :, i] for i, task in enumerate(self.tasks)}
        return _temporal_heads(self.rnn, self.classify, per_task)


class SlidingCNNRNN(nn.Module):
    """A trained :class:`MultitaskCNNRNN` as a per-frame predictor over windows of its CNN's features.

    For prediction on video: :meth:`features` runs the frozen CNN once per frame, and :meth:`forward` runs the
    GRUs over windows of those features, returning the logits of every frame of every window, one row per
    frame, so that an ``mtl_distill.Ensemble`` of such members averages their predictions frame by frame
    (``affect_data.prediction`` picks the row of the frame each window is for). Members built on one CNN
    module share it: its features are computed once for all of them, and ``Ensemble.save`` writes its weights
    once.

    Parameters
    ----------
    model : MultitaskCNNRNN
        The trained CNN-RNN (e.g. a ``table2`` student: its GRUs over the teacher CNN).
    sequence_length : int
        The clip length it was trained on: the windows :mod:`affect_data.prediction` gives it.

    Examples
    --------
    >>> import torch
    >>> cnn = MultitaskCNN("resnet_tiny", hidden=16)
    >>> member = SlidingCNNRNN(MultitaskCNNRNN(cnn, hidden=8), sequence_length=4)
    >>> features = member.features(torch.zeros(6, 3, 32, 32))
    >>> features.shape  # frames, tasks, hidden
    torch.Size([6, 3, 16])
    >>> member(torch.stack([features[:4], features[2:]]))["EXPR"].shape  # 2 windows of 4 frames
    torch.Size([8, 7])
    """

    def __init__(self, model: MultitaskCNNRNN, sequence_length: int) -> None:
        super().__init__()
        if sequence_length < 1:
            raise ValueError(f"sequence_length must be >= 1, got {sequence_length}")
        self.model = model
        self.sequence_length = int(sequence_length)

    @property
    def cnn(self) -> MultitaskCNN:
        return self.model.cnn

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The CNN's head features ``[B, T, hidden]`` of frames ``[B, 3, H, W]`` (tasks in model order)."""
        per_task = self.cnn.features(images)
        return torch.stack([per_task[task] for task in self.model.num_outputs], dim=1)

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task name -> logits ``[N * L, C]`` (window-major) for windows of features ``[N, L, T, hidden]``."""
        per_task = {task: windows[:, :, i] for i, task in enumerate(self.model.num_outputs)}
        return {task: logits.flatten(0, 1) for task, logits in self.model.forward_features(per_task).items()}


def _temporal_heads(
    rnn: nn.ModuleDict, classify: nn.ModuleDict, features: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    outputs = {}
    for task, gru in rnn.items():
        sequence, _ = gru(features[task])
        outputs[task] = classify[task](sequence)
    return outputs
