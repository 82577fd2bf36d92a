"""DistributedDataParallel: 2 CPU processes (gloo, launched with torchrun) end with the parameters of 1.

The toy run covers a teacher, a student with online soft labels (gathered teacher outputs) and a student
with cached soft labels (a cache built in shares by both ranks), the binned-regression CCC term (a batch
statistic: the ranks gather their outputs differentiably) and the sum-over-the-batch losses (no gradient
averaging mismatch), with random input noise (per-slot item seeds) and sharded validation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_training as toy

from mtl_distill import distributed
from mtl_distill.checkpoint import load_checkpoint
from mtl_distill.trainer import TrainConfig, Trainer

SCRIPT = Path(toy.__file__)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    torch.set_num_threads(1)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--ddp",
        "--out",
        str(tmp_path / "ddp"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-4000:]
    two_ranks = load_checkpoint(tmp_path / "ddp" / "final.pt")

    one_process = toy.run(None, **toy.DDP_SETTINGS)

    assert sorted(two_ranks) == sorted(one_process) == ["cached_student_0", "student_0", "teacher"]
    for model_name, state in one_process.items():
        for key, value in state.items():
            torch.testing.assert_close(two_ranks[model_name][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # the runs moved away from the shared starting point, so the comparison is not vacuous
    start = toy.make_model(dropout=0.0).state_dict()
    assert not torch.allclose(one_process["teacher"]["trunk.0.weight"], start["trunk.0.weight"], atol=1e-3)


def test_outside_a_process_group_the_helpers_are_no_ops():
    assert not distributed.is_distributed()
    assert (distributed.world_size(), distributed.rank()) == (1, 0)
    tensor = torch.ones(2, requires_grad=True)
    assert distributed.all_gather_tensor(tensor) is tensor
    mask = torch.tensor([True, False])
    outputs, masks, none = distributed.gather_batch({"a": tensor}, {"a": mask}, None)
    assert outputs["a"] is tensor and masks["a"] is mask and none is None  # no per-step conversions
    assert distributed.setup_distributed().type in ("cpu", "cuda")


def test_a_trainer_joins_no_process_group_and_refuses_an_unjoined_launch(monkeypatch):
    config = TrainConfig(epochs=1, progress=False, device="cpu")
    trainer = Trainer(toy.make_model(), toy.make_tasks(), config)
    assert trainer.device == torch.device("cpu") and not torch.distributed.is_initialized()
    # As under torchrun, but without the entry point's setup_distributed(): each process would train alone.
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"WORLD_SIZE=2 .*setup_distributed\(\)"):
        Trainer(toy.make_model(), toy.make_tasks(), config)
    assert not torch.distributed.is_initialized()
