"""The paper's multitask CNN and CNN-RNN (affect_data.models)."""

import pytest
import torch

from affect_data.models import (
    MultitaskCNN,
    MultitaskCNNRNN,
    build_backbone,
    default_resnet_key_map,
    load_backbone_weights,
)

torch.set_num_threads(1)


def test_cnn_returns_logits_per_task():
    model = MultitaskCNN("resnet_tiny", hidden=16).eval()
    outputs = model(torch.randn(3, 3, 32, 32))
    assert {task: tuple(logits.shape) for task, logits in outputs.items()} == {
        "AU": (3, 8),
        "EXPR": (3, 7),
        "VA": (3, 40),
    }
    assert {task: tuple(h.shape) for task, h in model.features(torch.randn(3, 3, 32, 32)).items()} == {
        "AU": (3, 16),
        "EXPR": (3, 16),
        "VA": (3, 16),
    }


@pytest.mark.parametrize(("name", "width"), [("resnet18", 512), ("resnet50", 2048)])
def test_torchvision_backbones_pool_to_their_width(name, width):
    _backbone, num_features = build_backbone(name)
    assert num_features == width
    model = MultitaskCNN(name).eval()
    assert model.embed["AU"][0].in_features == width
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64))["EXPR"].shape == (1, 7)


def test_unknown_backbone_is_an_error_listing_the_choices():
    with pytest.raises(ValueError, match=r"unknown backbone 'resnet5'.*resnet50"):
        build_backbone("resnet5")


def test_tiny_backbone_has_no_imagenet_weights():
    with pytest.raises(ValueError, match=r"no ImageNet weights.*local state-dict"):
        build_backbone("resnet_tiny", weights="imagenet")


def test_cnn_rnn_keeps_the_cnn_frozen_and_in_eval_mode():
    cnn = MultitaskCNN("resnet_tiny", hidden=16)
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    model = MultitaskCNNRNN(cnn, hidden=8)
    model.train()
    assert model.training and model.rnn.training
    assert not any(module.training for module in model.cnn.modules())

    clips = torch.randn(2, 5, 3, 32, 32)
    outputs = model(clips)
    assert {task: tuple(logits.shape) for task, logits in outputs.items()} == {
        "AU": (2, 5, 8),
        "EXPR": (2, 5, 7),
        "VA": (2, 5, 40),
    }
    sum(logits.sum() for logits in outputs.values()).backward()
    assert all(p.grad is None for p in model.cnn.parameters())
    assert all(p.grad is not None for p in model.rnn.parameters())

    # A training step changes the GRUs only; batch-norm running statistics do not drift.
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    after = cnn.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_cnn_rnn_frames_are_the_cnn_features():
    cnn = MultitaskCNN("resnet_tiny", hidden=16).eval()
    model = MultitaskCNNRNN(cnn, hidden=8).eval()
    clips = torch.randn(1, 3, 3, 32, 32)
    # Bidirectional: changing the last frame changes the first frame's output too.
    changed = clips.clone()
    changed[0, 2] += 1.0
    with torch.no_grad():
        a, b = model(clips)["AU"], model(changed)["AU"]
    assert not torch.allclose(a[0, 0], b[0, 0])
    with pytest.raises(ValueError, match=r"\[B, L, 3, H, W\]"):
        model(torch.randn(2, 3, 32, 32))


def test_key_map_strips_wrappers_and_drops_the_classifier():
    assert default_resnet_key_map("module.layer4.1.bn2.running_var") == "layer4.1.bn2.running_var"
    assert default_resnet_key_map("backbone.conv1.weight") == "conv1.weight"
    assert default_resnet_key_map("module.fc.bias") is None


def test_weights_load_from_a_prefixed_checkpoint(tmp_path):
    source, _ = build_backbone("resnet_tiny")
    state = {f"module.backbone.{k}": v for k, v in source.state_dict().items()}
    state["module.fc.weight"] = torch.zeros(1000, 128)
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": state, "epoch": 3}, path)

    model = MultitaskCNN("resnet_tiny", weights=path)
    loaded = model.backbone.state_dict()
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}  # no classifier
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_weights_with_wrong_keys_are_reported(tmp_path):
    source, _ = build_backbone("resnet_tiny")
    state = {f"net.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    target, _ = build_backbone("resnet_tiny")
    with pytest.raises(ValueError, match=r"missing key\(s\).*bn1.bias.*unexpected key\(s\).*net\.") as error:
        load_backbone_weights(target, path)
    assert "weights.pt" in str(error.value)
    # A user-supplied key map fixes it.
    load_backbone_weights(target, path, key_map=lambda key: key.removeprefix("net."))


def test_weights_of_another_architecture_are_a_shape_error(tmp_path):
    source, _ = build_backbone("resnet18")
    path = tmp_path / "resnet18.pt"
    torch.save(source.state_dict(), path)
    target, _ = build_backbone("resnet_tiny")
    with pytest.raises(ValueError, match=r"differ in shape"):
        load_backbone_weights(target, path, strict=False)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt.*does not exist.*imagenet"):
        MultitaskCNN("resnet_tiny", weights=tmp_path / "nope.pt")


def test_imagenet_weights_that_cannot_be_downloaded_say_what_to_do(monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(RuntimeError, match=r"could not get .*resnet18.*name resolution.*pass its path.*null"):
        build_backbone("resnet18", weights="imagenet")
