import warnings
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from affect_data.cache import build_frame_cache
from affect_data.datasets import FrameDataset, SequenceDataset
from affect_data.schema import AU_NAMES, as_frame_table
from affect_data.transforms import FrameTransform, load_image, resized_size

torch.set_num_threads(1)
SIZE = 16  # crops of 16 px cut from 19 px images keep these tests fast
SIDE = resized_size(SIZE)


def write_frames(folder, videos=(("v0", 5), ("v1", 3)), same_image_per_video=False):
    """Noise images (JPEG, 24 px) and a frame table: AU on v0, EXPR on v1, VA on v0's first two frames."""
    rng = np.random.default_rng(0)
    rows = []
    for video, n in videos:
        (folder / video).mkdir(parents=True)
        base = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        for f in range(n):
            pixels = base if same_image_per_video else rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            path = folder / video / f"{f + 1:05d}.jpg"
            Image.fromarray(pixels).save(path, quality=95)
            au = {name: (f + i) % 2 for i, name in enumerate(AU_NAMES)} if video == "v0" else {}
            va = {"valence": 0.5, "arousal": -0.25} if video == "v0" and f < 2 else {}
            expr = {"expr": f % 7} if video == "v1" else {}
            rows.append(
                {"dataset": "d", "video": video, "frame": f, "path": str(path), "subject": video}
                | {"split": "train"}
                | au
                | va
                | expr
            )
    return as_frame_table(pd.DataFrame(rows))


@contextmanager
def warnings_as_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def table(tmp_path):
    return write_frames(tmp_path)


def test_frame_items_shapes_dtypes_and_masks(table):
    dataset = FrameDataset(table, size=SIZE, train=False)
    assert len(dataset) == 8
    image, targets, masks = dataset[0]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.float32
    assert targets["AU"].dtype == torch.float32 and targets["AU"].shape == (8,)
    assert targets["EXPR"].dtype == torch.int64 and targets["EXPR"].shape == ()
    assert targets["VA"].dtype == torch.float32 and targets["VA"].shape == (2,)
    assert {k: v.item() for k, v in masks.items()} == {"AU": True, "EXPR": False, "VA": True}
    assert targets["AU"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert targets["VA"].tolist() == [0.5, -0.25]
    assert targets["EXPR"].item() == 0  # missing -> 0, masked out

    _, targets, masks = dataset[6]  # v1, frame 1
    assert {k: v.item() for k, v in masks.items()} == {"AU": False, "EXPR": True, "VA": False}
    assert targets["EXPR"].item() == 1 and targets["AU"].sum() == 0

    only_expr = FrameDataset(table, task_names=["EXPR"], size=SIZE)
    assert set(only_expr[0][1]) == set(only_expr[0][2]) == {"EXPR"}


def test_collate_gives_batched_dicts(table):
    batch = next(iter(DataLoader(FrameDataset(table, size=SIZE), batch_size=4)))
    images, targets, masks = batch
    assert images.shape == (4, 3, SIZE, SIZE)
    assert targets["AU"].shape == (4, 8) and targets["EXPR"].shape == (4,) and masks["VA"].shape == (4,)
    assert masks["VA"].dtype == torch.bool


def test_random_view_is_drawn_per_call_and_follows_torch_seed(table):
    dataset = FrameDataset(table, size=SIZE, train=True)
    torch.manual_seed(0)
    views = [dataset[0][0] for _ in range(10)]
    assert any(not torch.equal(views[0], v) for v in views[1:])
    torch.manual_seed(0)
    assert all(torch.equal(a, dataset[0][0]) for a in views)


def test_eval_view_is_the_deterministic_center_crop(table):
    dataset = FrameDataset(table, size=SIZE, train=False, normalize=None)
    first, second = dataset[2][0], dataset[2][0]
    assert torch.equal(first, second)
    pixels = load_image(table["path"].iloc[2], SIDE)
    margin = (SIDE - SIZE) // 2
    expected = torch.from_numpy(pixels[margin : margin + SIZE, margin : margin + SIZE]).permute(2, 0, 1) / 255
    torch.testing.assert_close(first, expected)


def test_normalisation_parameter(table):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    plain = FrameDataset(table, size=SIZE, train=False, normalize=None)[0][0]
    normed = FrameDataset(table, size=SIZE, train=False, normalize=(mean, std))[0][0]
    expected = (plain - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(normed, expected)
    with pytest.raises(ValueError, match="normalize"):
        FrameTransform(size=SIZE, normalize=((0.5, 0.5), (1, 1)))
    with pytest.raises(ValueError, match="scale must be at least 1"):
        FrameTransform(size=SIZE, scale=0.8)


def test_workers_are_reproducible_from_the_loader_seed(table):
    dataset = FrameDataset(table, size=SIZE, train=True)

    def first_batch(seed):
        generator = torch.Generator().manual_seed(seed)
        loader = DataLoader(dataset, batch_size=8, num_workers=2, generator=generator)
        return next(iter(loader))[0]

    assert torch.equal(first_batch(1), first_batch(1))
    assert not torch.equal(first_batch(1), first_batch(2))


def test_return_index_gives_table_row_labels(table):
    subset = table.iloc[[5, 2, 7]]
    dataset = FrameDataset(subset, size=SIZE, return_index=True)
    assert [dataset[i][3].item() for i in range(3)] == [5, 2, 7]
    with pytest.raises(ValueError, match="integer table index"):
        FrameDataset(table.set_index("path", drop=False), size=SIZE, return_index=True)


def test_sequences_are_padded_with_the_edge_frame_and_masked(table):
    clips = SequenceDataset(table, length=4, size=SIZE, train=False, return_index=True)
    # v0 has 5 frames -> [0..3], [4 + 3 pads]; v1 has 3 frames -> [5, 6, 7 + 1 pad].
    assert clips.positions.tolist() == [[0, 1, 2, 3], [4, 4, 4, 4], [5, 6, 7, 7]]
    images, targets, masks, index = clips[1]
    assert images.shape == (4, 3, SIZE, SIZE)
    assert targets["AU"].shape == (4, 8) and targets["EXPR"].shape == (4,) and targets["VA"].shape == (4, 2)
    assert masks["AU"].tolist() == [True, False, False, False]
    assert index.tolist() == [4, 4, 4, 4]
    assert all(torch.equal(images[0], images[k]) for k in range(1, 4))  # the padding shows the edge frame
    _, targets, masks, _ = clips[2]
    assert masks["EXPR"].tolist() == [True, True, True, False] and targets["EXPR"].tolist()[:3] == [0, 1, 2]
    assert masks["VA"].tolist() == [False] * 4

    overlapping = SequenceDataset(table, length=4, stride=2, size=SIZE)
    assert overlapping.positions.tolist() == [[0, 1, 2, 3], [2, 3, 4, 4], [5, 6, 7, 7]]


def test_sequences_follow_frame_order_not_row_order(table):
    shuffled = table.sample(frac=1.0, random_state=0)
    clips = SequenceDataset(shuffled, length=8, size=SIZE)
    frames = shuffled["frame"].to_numpy()[clips.positions]
    videos = shuffled["video"].to_numpy()[clips.positions]
    assert sorted(frames.tolist()) == [[0, 1, 2, 2, 2, 2, 2, 2], [0, 1, 2, 3, 4, 4, 4, 4]]
    assert (videos == videos[:, :1]).all()


def test_one_random_view_per_clip(tmp_path):
    table = write_frames(tmp_path, videos=(("v0", 6),), same_image_per_video=True)
    clips = SequenceDataset(table, length=6, size=SIZE, train=True)
    torch.manual_seed(3)
    views = [clips[0][0] for _ in range(6)]
    for images in views:  # identical frames stay identical: one crop and flip for the whole clip
        assert all(torch.equal(images[0], images[k]) for k in range(1, 6))
    assert any(not torch.equal(views[0], v) for v in views[1:])


def test_datasets_read_the_same_pixels_from_the_cache(table, tmp_path):
    cache = build_frame_cache(table, tmp_path / "cache", size=SIDE)
    for cls, kwargs in ((FrameDataset, {}), (SequenceDataset, {"length": 4})):
        from_files = cls(table, size=SIZE, **kwargs)
        from_cache = cls(table, size=SIZE, cache=cache, **kwargs)
        for i in range(len(from_files)):
            torch.manual_seed(i)
            a = from_files[i]
            torch.manual_seed(i)
            b = from_cache[i]
            assert torch.equal(a[0], b[0])


def test_dataset_errors(table, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'FACS'"):
        FrameDataset(table, task_names=["FACS"])
    with pytest.raises(ValueError, match=r"needs column\(s\) \['valence', 'arousal'\]"):
        FrameDataset(table.drop(columns=["valence", "arousal"]), task_names=["VA"])
    with pytest.raises(ValueError, match="stride"):
        SequenceDataset(table, length=4, stride=0)
    cache = build_frame_cache(table, tmp_path / "cache", size=SIDE + 1)
    with pytest.raises(ValueError, match=f"holds {SIDE + 1} px images.*size={SIDE}"):
        FrameDataset(table, size=SIZE, cache=cache)
    with pytest.raises(OSError, match=r"cannot read image .*missing\.jpg"):
        FrameDataset(table.assign(path="/nowhere/missing.jpg"), size=SIZE, unreadable="raise")[0]
    with pytest.raises(ValueError, match="unreadable must be 'mask' or 'raise'"):
        FrameDataset(table, size=SIZE, unreadable="skip")


def damage(table, rows):
    """A zero-byte file for the first row, a truncated JPEG for the others (both fail to decode)."""
    for k, row in enumerate(rows):
        path = table["path"].iloc[row]
        with open(path, "r+b") as file:
            file.truncate(0 if k == 0 else file.seek(0, 2) // 2)


def test_an_unreadable_frame_is_served_masked_not_raised_mid_epoch(table):
    # Before: OSError "cannot identify image file" at the first batch that held the frame.
    damage(table, [0, 6])
    dataset = FrameDataset(table, size=SIZE, train=True)
    with pytest.warns(UserWarning, match=r"\.jpg: .*served as a blank image with every mask False"):
        batches = list(DataLoader(dataset, batch_size=4))
    assert sum(len(images) for images, _, _ in batches) == 8
    masks = {task: torch.cat([b[2][task] for b in batches]) for task in ("AU", "EXPR", "VA")}
    assert masks["AU"].tolist() == [False, True, True, True, True, False, False, False]
    assert masks["EXPR"].tolist() == [False] * 5 + [True, False, True]
    assert masks["VA"].tolist() == [False, True] + [False] * 6
    assert sorted(dataset.unreadable_images) == sorted(table["path"].iloc[[0, 6]])
    with warnings_as_errors():  # warned once per file
        dataset[0]


def test_an_unreadable_frame_of_a_clip_is_masked_alone(table):
    damage(table, [1])
    clips = SequenceDataset(table, length=4, size=SIZE, train=False)
    with pytest.warns(UserWarning, match="00002.jpg"):
        images, _, masks = clips[0]
    assert masks["AU"].tolist() == [True, False, True, True]
    assert masks["VA"].tolist() == [True, False, False, False]
    assert images.shape == (4, 3, SIZE, SIZE)
    assert list(clips.unreadable_images) == [table["path"].iloc[1]]


def test_windows_never_start_past_the_last_frame():
    """stride > length skips frames but never yields a clip of padding alone; stride <= length covers all."""
    for n in range(1, 14):
        table = pd.DataFrame({"dataset": "d", "video": "a", "frame": range(n), "path": "unused.jpg"})
        for length in (1, 3, 4):
            for stride in (1, 2, 4, 5, 6, 9):
                clips = SequenceDataset(table, length=length, stride=stride, task_names=[])
                starts = clips.positions[:, 0]
                assert clips.valid[:, 0].all(), (n, length, stride)
                assert starts.tolist() == list(range(0, len(starts) * stride, stride))
                if stride <= length:  # windows overlap or touch: the last one, and only it, reaches the end
                    assert starts[-1] + length >= n and (len(starts) == 1 or starts[-2] + length < n)
                else:  # one window per start inside the video
                    assert len(starts) == -(-n // stride)
    table = pd.DataFrame({"dataset": "d", "video": "a", "frame": range(11), "path": "unused.jpg"})
    clips = SequenceDataset(table, length=4, stride=6, task_names=[])
    assert clips.positions.tolist() == [[0, 1, 2, 3], [6, 7, 8, 9]] and clips.valid.all()
