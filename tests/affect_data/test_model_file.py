"""The model file (affect_data.model_file) on its own: written with model_file_metadata and Ensemble.save,
read back by load_model_file. The emotion example's export of whole runs is tested in
tests/examples/test_export.py."""

import re
from pathlib import Path

import pytest
import torch

from affect_data.model_file import KIND, ModelFileError, load_model_file, model_file_metadata
from affect_data.models import MultitaskCNN, MultitaskCNNRNN, SlidingCNNRNN
from affect_data.prediction import abaw_tasks
from mtl_distill import Ensemble

torch.set_num_threads(1)

CNN = {
    "model": "MultitaskCNN",
    "backbone": "resnet_tiny",
    "hidden": 16,
    "dropout": 0.0,
    "num_outputs": {"AU": 8, "EXPR": 7, "VA": 40},
    "image_size": 32,
    "normalize": [[0.5, 0.5, 0.5], [0.25, 0.25, 0.25]],
}


def cnn() -> MultitaskCNN:
    return MultitaskCNN("resnet_tiny", hidden=16, dropout=0.0)


def test_a_cnn_ensemble_round_trips_with_its_thresholds_and_metadata(tmp_path):
    torch.manual_seed(0)
    ensemble = Ensemble([cnn(), cnn()], abaw_tasks(), metadata=model_file_metadata(CNN, {"trained_on": "x"}))
    ensemble.set_thresholds({"AU": [0.3] * 8})
    loaded = load_model_file(ensemble.save(tmp_path / "model.pt"))
    images = torch.randn(2, 3, 32, 32)
    expected, got = ensemble.eval().predict(images), loaded.predict(images)
    assert all(torch.allclose(torch.as_tensor(expected[t]), torch.as_tensor(got[t])) for t in expected)
    assert loaded.metadata == {
        "kind": KIND,
        "version": 1,
        "architecture": CNN,
        "provenance": {"trained_on": "x"},
    }
    assert list(loaded.thresholds["AU"]) == pytest.approx([0.3] * 8)
    assert not loaded.training


def test_cnn_gru_members_are_rebuilt_on_one_shared_cnn(tmp_path):
    shared = cnn()
    members = [SlidingCNNRNN(MultitaskCNNRNN(shared, hidden=8), 4) for _ in range(2)]
    architecture = {**CNN, "model": "MultitaskCNNRNN", "rnn_hidden": 8, "sequence_length": 4}
    path = Ensemble(members, abaw_tasks(), metadata=model_file_metadata(architecture, {})).save(
        tmp_path / "g.pt"
    )
    loaded = load_model_file(path)
    first, second = (member.model.cnn for member in loaded.members)
    assert first is second
    saved = shared.state_dict()
    assert all(torch.equal(saved[key], value) for key, value in first.state_dict().items())


@pytest.mark.parametrize(
    ("architecture", "message"),
    [
        ({key: value for key, value in CNN.items() if key != "image_size"}, "no 'image_size'"),
        ({**CNN, "model": "MultitaskCNNRNN"}, "no 'sequence_length'"),
        ({**CNN, "model": "ViT"}, "architecture 'ViT' is unknown"),
    ],
)
def test_metadata_that_would_not_load_is_refused_when_written(architecture, message):
    with pytest.raises(ModelFileError, match=message):
        model_file_metadata(architecture, {})


def test_an_ensemble_file_without_the_model_metadata_is_not_a_model_file(tmp_path):
    path = Ensemble([cnn()], abaw_tasks()).save(tmp_path / "plain.pt")
    with pytest.raises(ModelFileError, match=r"plain\.pt is not an emotion model file"):
        load_model_file(path)


def _readme_blocks() -> list[str]:
    readme = (Path(__file__).parents[2] / "packages" / "affect_data" / "README.md").read_text()
    section = readme[readme.index("## The paper's networks and the model file") :].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_examples_run(video, tmp_path, monkeypatch, capsys):
    networks, model_file = _readme_blocks()
    exec(compile(networks, "packages/affect_data/README.md", "exec"), {})
    assert "torch.Size([2, 8, 8])" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    (tmp_path / "interview.mp4").write_bytes(video.read_bytes())
    Ensemble([cnn()], abaw_tasks(), metadata=model_file_metadata(CNN, {})).save("emotion_model.pt")
    exec(compile(model_file, "packages/affect_data/README.md", "exec"), {})
    written = sorted(path.name for path in (tmp_path / "predictions").iterdir())
    assert written == ["predictions.csv", "predictions.json", "predictions.png"]
