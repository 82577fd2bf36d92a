"""imbalance.torch: per-epoch re-drawing from (seed, epoch) and DistributedDataParallel sharding."""

import numpy as np
import pytest
import torch
from imbalance_helpers import au_like
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from imbalance import MLROS, BinnedSampler, ClassBalancedSampler
from imbalance.torch import ResampledSampler, shard

torch.set_num_threads(1)
Y_CLASSES = np.array([0] * 50 + [1] * 7 + [2] * 3)


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("length", [1, 5, 12, 13])
def test_shards_cover_the_list_exactly_once_up_to_padding(world, length):
    indices = np.arange(100, 100 + length)
    shards = [shard(indices, rank, world) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # every rank gets the same number of steps
    interleaved = np.stack(shards, axis=1).ravel()  # step-by-step order across ranks
    padding = len(interleaved) - length
    assert 0 <= padding < world
    np.testing.assert_array_equal(interleaved[:length], indices)  # every index exactly once...
    np.testing.assert_array_equal(interleaved[length:], np.resize(indices, padding))  # ...then the padding


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_ranks_draw_the_same_epoch_list_and_split_it(world):
    y = au_like(301, seed=0)
    samplers = [ResampledSampler(MLROS(25), y, seed=3, num_replicas=world, rank=r) for r in range(world)]
    for epoch in (0, 1):
        for sampler in samplers:
            sampler.set_epoch(epoch)
        full = samplers[0].epoch_indices()
        parts = [list(s) for s in samplers]
        assert all(len(p) == len(samplers[0]) == -(-len(full) // world) for p in parts)
        interleaved = np.array(parts).T.ravel()[: len(full)]
        np.testing.assert_array_equal(interleaved, full)


def test_epochs_differ_and_are_reproducible():
    sampler = ResampledSampler(ClassBalancedSampler(), Y_CLASSES, seed=7)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second
    again = ResampledSampler(ClassBalancedSampler(random_state=123), Y_CLASSES, seed=7)
    again.set_epoch(1)
    assert list(again) == second  # the resampler's own random_state does not matter
    other_seed = ResampledSampler(ClassBalancedSampler(), Y_CLASSES, seed=8)
    other_seed.set_epoch(1)
    assert list(other_seed) != second


def test_shuffle_off_keeps_the_resampler_order():
    y = au_like(200, seed=1)
    sampler = ResampledSampler(MLROS(25), y, seed=0, shuffle=False)
    np.testing.assert_array_equal(list(sampler)[:200], np.arange(200))


def test_reads_world_and_rank_from_torch_distributed(monkeypatch):
    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 3)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 2)
    sampler = ResampledSampler(ClassBalancedSampler(), Y_CLASSES)
    assert (sampler.num_replicas, sampler.rank, len(sampler)) == (3, 2, 20)


def test_works_in_a_dataloader_with_workers_off():
    va = np.clip(np.random.default_rng(0).normal(0, 0.4, size=(64, 2)), -1, 1)
    dataset = TensorDataset(torch.arange(64))
    sampler = ResampledSampler(BinnedSampler(n_bins=4), va, seed=0, num_replicas=2, rank=0)
    seen = torch.cat([batch for (batch,) in DataLoader(dataset, batch_size=8, sampler=sampler)])
    assert len(seen) == len(sampler) == 32


def test_weights_feed_weighted_random_sampler():
    weights = ClassBalancedSampler().sample_weights(Y_CLASSES)
    drawn = np.array(
        list(
            WeightedRandomSampler(torch.from_numpy(weights), 6000, generator=torch.Generator().manual_seed(0))
        )
    )
    shares = np.bincount(Y_CLASSES[drawn]) / 6000
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.03)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank must lie in"):
        ResampledSampler(ClassBalancedSampler(), Y_CLASSES, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas must be at least 1"):
        ResampledSampler(ClassBalancedSampler(), Y_CLASSES, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="fit_indices"):
        ResampledSampler(object(), Y_CLASSES)
    with pytest.raises(ValueError, match="seed"):
        ResampledSampler(ClassBalancedSampler(), Y_CLASSES, seed=-1)
    with pytest.raises(ValueError, match="epoch"):
        ResampledSampler(ClassBalancedSampler(), Y_CLASSES).set_epoch(-1)


@pytest.mark.parametrize(
    ("rank", "num_replicas", "message"),
    [
        (0, 0, "num_replicas must be at least 1, got 0"),  # before: ZeroDivisionError
        (2, 2, r"rank must lie in \[0, 1\], got 2"),
        (-1, 2, r"rank must lie in \[0, 1\], got -1"),
        (0, 1.5, "num_replicas must be an integer, got 1.5"),
        (True, 2, "rank must be an integer, got True"),
    ],
)
def test_shard_rejects_bad_ranks_and_world_sizes(rank, num_replicas, message):
    with pytest.raises(ValueError, match=message):
        shard(np.arange(5), rank, num_replicas)
    with pytest.raises(ValueError, match="indices must be 1-D"):
        shard(np.zeros((2, 2), dtype=int), 0, 1)
