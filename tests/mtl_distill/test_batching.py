"""MultiTaskBatchSampler and IndexedDataset: the paper's N-per-task batches, recycling, determinism, DDP."""

# ruff: noqa: NPY002 - numpy's legacy global generator is tested on purpose (augmentations draw from it)

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler, SequentialSampler

from mtl_distill.batching import IndexedDataset, MultiTaskBatchSampler, concat_datasets

torch.set_num_threads(1)


class EpochSampler(Sampler[int]):
    """A stand-in for imbalance.torch samplers: a new list for every set_epoch, deterministic in it."""

    def __init__(self, size: int, length: int) -> None:
        self.size, self.length, self.epoch, self.epochs_seen = size, length, 0, []

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        return iter(np.random.default_rng(self.epoch).integers(0, self.size, self.length).tolist())


class TaskDataset(torch.utils.data.Dataset):
    """Items labelled for one task; inputs carry the index and a noise draw (a random augmentation)."""

    def __init__(self, task: str, size: int, tasks=("a", "b")) -> None:
        self.task, self.size, self.tasks = task, size, tasks

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        inputs = torch.tensor([float(index), torch.rand(()).item()])
        targets = {name: torch.tensor(float(index)) for name in self.tasks}
        masks = {name: torch.tensor(name == self.task) for name in self.tasks}
        return inputs, targets, masks


def test_every_batch_holds_n_samples_of_each_task_and_their_masks():
    joined, offsets = concat_datasets({"a": TaskDataset("a", 10), "b": TaskDataset("b", 7)})
    assert offsets == {"a": 0, "b": 10}
    sampler = MultiTaskBatchSampler(
        {"a": range(10), "b": [0, 2, 4, 6]}, batch_size={"a": 3, "b": 2}, steps_per_epoch=4, offsets=offsets
    )
    loader = DataLoader(IndexedDataset(joined), batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(sampler) == 4
    for inputs, _targets, masks, indices in batches:
        local = indices - torch.tensor([0] * 3 + [10] * 2)  # the per-task dataset's own index
        assert local.tolist() == inputs[:, 0].long().tolist()
        assert masks["a"].tolist() == [True] * 3 + [False] * 2
        assert masks["b"].tolist() == [False] * 3 + [True] * 2
        assert set(indices[:3].tolist()) <= set(range(10))
        assert set(indices[3:].tolist()) <= {10, 12, 14, 16}


def test_short_lists_are_recycled_as_fresh_permutations_and_epochs_follow_each_other():
    sampler = MultiTaskBatchSampler({"a": range(20), "b": range(100, 105)}, batch_size=5, steps_per_epoch=4)
    drawn_b = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        drawn_b += [index for batch in sampler for index in batch[5:]]
    # 3 epochs x 4 steps x 5 = 60 draws = 12 whole cycles of the 5-sample list: each sample 12 times
    assert np.bincount(np.array(drawn_b) - 100).tolist() == [12] * 5
    cycles = [tuple(drawn_b[i : i + 5]) for i in range(0, 60, 5)]
    assert len(set(cycles)) > 1  # reshuffled per cycle
    sampler.set_epoch(0)
    drawn_a = [index for batch in sampler for index in batch[:5]]
    assert sorted(drawn_a) == list(range(20))  # one epoch = one pass over the 20-sample list


def test_default_epoch_length_is_one_pass_over_the_longest_source():
    sampler = MultiTaskBatchSampler({"a": range(10), "b": range(3)}, batch_size=4)
    assert sampler.steps_per_epoch == 3  # ceil(10 / 4), not the shortest task's 1


def test_batches_are_a_function_of_seed_epoch_and_step():
    def make(seed):
        return MultiTaskBatchSampler(
            {"a": range(7), "b": range(50, 53)}, batch_size=2, steps_per_epoch=5, seed=seed
        )

    walked = make(1)
    history = []
    for epoch in range(4):
        walked.set_epoch(epoch)
        history.append(list(walked))
    fresh = make(1)
    fresh.set_epoch(3)
    assert list(fresh) == history[3]  # no need to replay epochs 0-2
    fresh.set_epoch(2, start_step=3)
    assert len(fresh) == 2 and list(fresh) == history[2][3:]  # resume mid-epoch
    other = make(2)
    other.set_epoch(3)
    assert list(other) != history[3]
    assert walked.with_seed(2).global_batch(3, 0).tolist() == other.global_batch(3, 0).tolist()


def test_samplers_with_set_epoch_get_the_next_cycle_and_others_are_read_once():
    epoch_sampler = EpochSampler(size=30, length=4)
    generator = torch.Generator().manual_seed(0)
    sampler = MultiTaskBatchSampler(
        {"a": epoch_sampler, "b": RandomSampler(range(6), generator=generator)},
        batch_size=2,
        steps_per_epoch=6,
        shuffle=False,
    )
    batches = list(sampler)
    firsts = [index for batch in batches for index in batch[:2]]
    expected = [index for cycle in range(3) for index in np.random.default_rng(cycle).integers(0, 30, 4)]
    assert firsts == expected  # cycles 0, 1, 2 of the sampler, in its own order (shuffle=False)
    assert {0, 1, 2} <= set(epoch_sampler.epochs_seen)
    seconds = [index for batch in batches for index in batch[2:]]
    assert seconds[:6] == seconds[6:]  # no set_epoch: the one list is reused


def test_torch_and_imbalance_samplers_plug_in():
    sources = {"a": SequentialSampler(range(5)), "b": np.array([3, 1, 4]), "c": torch.tensor([7, 8])}
    sampler = MultiTaskBatchSampler(sources, batch_size=1, steps_per_epoch=2, shuffle=False)
    assert list(sampler) == [[0, 3, 7], [1, 1, 8]]
    imbalance = pytest.importorskip("imbalance")  # a sibling package, not a dependency of mtl_distill
    imbalance_torch = pytest.importorskip("imbalance.torch")
    labels = np.array([0] * 18 + [1] * 2)
    resampled = imbalance_torch.ResampledSampler(
        imbalance.ClassBalancedSampler(random_state=0), labels, seed=0, num_replicas=1, rank=0
    )
    balanced = MultiTaskBatchSampler({"t": resampled}, batch_size=10, steps_per_epoch=4)
    drawn = np.concatenate([batch for batch in balanced])
    assert 0.25 < np.mean(labels[drawn] == 1) < 0.75  # the minority class drawn far above its 10 %


def test_ddp_ranks_take_contiguous_shares_of_every_task_block():
    sources = {"a": range(40), "b": range(100, 140)}
    single = MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=3, item_seeds=True)
    ranks = [
        MultiTaskBatchSampler(
            sources, batch_size=4, steps_per_epoch=3, num_replicas=2, rank=r, item_seeds=True
        )
        for r in (0, 1)
    ]
    for whole, share0, share1 in zip(single, *ranks, strict=True):
        assert len(share0) == len(share1) == 4
        assert whole == share0[:2] + share1[:2] + share0[2:] + share1[2:]  # same indices and item seeds
    with pytest.raises(ValueError, match=r"batch_size\['a'\] = 3 is not divisible by the world size 2"):
        list(MultiTaskBatchSampler(sources, batch_size={"a": 3, "b": 2}, num_replicas=2, rank=0))


def test_workers_and_resumes_see_the_same_augmented_items():
    joined, offsets = concat_datasets({"a": TaskDataset("a", 12), "b": TaskDataset("b", 12)})
    sampler = MultiTaskBatchSampler(
        {"a": range(12), "b": range(12)}, batch_size=3, steps_per_epoch=4, offsets=offsets, item_seeds=True
    )

    def inputs(num_workers, start_step=0):
        sampler.set_epoch(1, start_step)
        loader = DataLoader(IndexedDataset(joined), batch_sampler=sampler, num_workers=num_workers)
        return [batch[0] for batch in loader]

    in_process = inputs(0)
    assert len({float(x[0, 1]) for x in in_process}) == 4  # the noise differs between slots
    with_workers = inputs(2)
    for a, b in zip(in_process, with_workers, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(in_process[2:], inputs(0, start_step=2), strict=True):
        assert torch.equal(a, b)


def test_indexed_dataset_restores_the_global_generators_in_the_main_process():
    # numpy's legacy global generator on purpose: it is what augmentation code commonly draws from
    indexed = IndexedDataset(TaskDataset("a", 3))
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = torch.rand(1), np.random.rand(), random.random()
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    first = indexed[(1, 42)]
    assert (torch.rand(1), np.random.rand(), random.random()) == expected
    assert torch.equal(indexed[(1, 42)][0], first[0]) and first[3] == 1
    with pytest.raises(IndexError, match="sample index 3 is out of range for a dataset of 3 items"):
        indexed[3]


def test_item_seeding_leaves_the_cuda_generators_alone(monkeypatch):
    # torch.manual_seed would also reseed every CUDA generator (GPU dropout), which is not restored after
    # the item, and costs ~0.4 ms per item; only the CPU generators that data loading uses are seeded.
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded.append)
    indexed = IndexedDataset(TaskDataset("a", 3))
    first = indexed[(1, 42)]
    assert torch.equal(indexed[(1, 42)][0], first[0])  # still reproducible per item seed
    assert reseeded == []


def test_bad_sources_and_settings_are_named():
    with pytest.raises(ValueError, match="index list of task 'a' is empty"):
        MultiTaskBatchSampler({"a": []}, batch_size=1)
    with pytest.raises(ValueError, match="index list of task 'a' holds a negative index"):
        MultiTaskBatchSampler({"a": [0, -1]}, batch_size=1)
    with pytest.raises(ValueError, match="task 'a' must be a 1-D sequence of ints"):
        MultiTaskBatchSampler({"a": [0.5, 1.0]}, batch_size=1)
    sharded = torch.utils.data.DistributedSampler(range(8), num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="sampler of task 'a' shards for 2 replicas"):
        MultiTaskBatchSampler({"a": sharded}, batch_size=1)
    with pytest.raises(ValueError, match=r"batch_size gives no value for task\(s\) \['b'\]"):
        MultiTaskBatchSampler({"a": [0], "b": [1]}, batch_size={"a": 1})
    with pytest.raises(ValueError, match="names unknown task"):
        MultiTaskBatchSampler({"a": [0]}, batch_size={"a": 1, "z": 1})
    with pytest.raises(ValueError, match=r"batch_size\['a'\] must be an int >= 1"):
        MultiTaskBatchSampler({"a": [0]}, batch_size=0)
    with pytest.raises(ValueError, match="steps_per_epoch must be a positive int"):
        MultiTaskBatchSampler({"a": [0]}, batch_size=1, steps_per_epoch=0)
    with pytest.raises(ValueError, match="needs at least one task source"):
        MultiTaskBatchSampler({}, batch_size=1)
    with pytest.raises(ValueError, match="start_step"):
        MultiTaskBatchSampler({"a": [0]}, batch_size=1, steps_per_epoch=2).set_epoch(0, start_step=3)
    with pytest.raises(ValueError, match=r"must be \(inputs, targets, masks\)"):
        IndexedDataset([(1, 2)])[0]


def test_a_bag_draws_each_sample_a_fixed_poisson_number_of_times():
    sampler = MultiTaskBatchSampler({"a": range(5000), "b": EpochSampler(size=300, length=200)}, batch_size=8)
    bag = sampler.bagged(bag_seed=3)
    cycle = bag._cycle("a", 0)
    counts = np.bincount(cycle, minlength=5000)
    # Poisson(1): 1/e of the samples left out, 1/e once, 1/(2e) twice
    assert abs(np.mean(counts == 0) - np.exp(-1)) < 0.03
    assert abs(np.mean(counts == 2) - np.exp(-1) / 2) < 0.03
    # The same bag in every cycle (reshuffled), for every seed of the sampler, and after a restart.
    assert np.array_equal(np.sort(bag._cycle("a", 4)), np.sort(cycle))
    assert np.array_equal(np.sort(bag.with_seed(9)._cycle("a", 0)), np.sort(cycle))
    fresh = sampler.bagged(bag_seed=3)
    assert np.array_equal(fresh.global_batch(2, 7), bag.global_batch(2, 7))
    # A source drawing a new list every cycle keeps only its in-bag samples, repeated.
    in_bag = set(np.flatnonzero(bag._multiplicities("b", np.arange(300))).tolist())
    drawn = np.concatenate([bag.global_batch(0, step)[8:] for step in range(bag.steps_per_epoch)])
    assert set(drawn.tolist()) <= in_bag and len(in_bag) < 250
    # Another bag seed, another bag; the sampler it came from is untouched.
    other = np.bincount(sampler.bagged(bag_seed=4)._cycle("a", 0), minlength=5000)
    assert not np.array_equal(other, counts)
    assert sampler.bag_seed is None and np.array_equal(np.sort(sampler._cycle("a", 0)), np.arange(5000))


def test_a_bag_is_the_same_on_every_ddp_rank_and_a_too_small_source_is_named():
    sources = {"a": range(40), "b": range(100, 140)}
    whole = MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=12).bagged(5)
    shares = [
        MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=12, num_replicas=2, rank=r).bagged(5)
        for r in (0, 1)
    ]
    for batch, share0, share1 in zip(whole, *shares, strict=True):
        assert batch == share0[:2] + share1[:2] + share0[2:] + share1[2:]
    tiny = MultiTaskBatchSampler({"a": [0]}, batch_size=1)
    seed = next(s for s in range(100) if tiny.bagged(s)._multiplicities("a", np.array([0]))[0] == 0)
    with pytest.raises(ValueError, match=rf"bootstrap bag \(bag_seed {seed}\) of task 'a' left no sample"):
        tiny.bagged(seed).global_batch(0, 0)


def test_a_bagged_list_is_not_rebuilt_for_every_batch(monkeypatch):
    # The bag's length is counted once: a batch deep in a later cycle must not rebuild cycle 0 to find it.
    bag = MultiTaskBatchSampler({"a": range(1000)}, batch_size=10, steps_per_epoch=50).bagged(bag_seed=2)
    bag.global_batch(7, 3)  # cycle 3 or so of "a", now built
    first = bag.global_batch(7, 4)

    def no_rebuild(*args):
        raise AssertionError("a batch inside a built cycle recomputed the bag")

    monkeypatch.setattr(bag, "_multiplicities", no_rebuild)
    assert np.array_equal(bag.global_batch(7, 4), first)
    bag.global_batch(7, 5)
