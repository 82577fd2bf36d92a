"""The synthetic corpus on disk: formats read back by small independent readers, quirks, truth, seeds."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_data.schema import AU_NAMES, EXPR_NAMES
from affect_data.synthetic import PRESETS, TRUTH_COLUMNS, Preset, load_truth, write_corpus

EXPW_TO_AFF = [1, 2, 3, 4, 5, 6, 0]
SET_DIRS = {"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"}
HEADERS = {"AU": ",".join(AU_NAMES), "EXPR": ",".join(EXPR_NAMES), "VA": "valence,arousal"}
DISFA_AUS = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("synthetic") / "corpus", preset="tiny", seed=0)


@pytest.fixture(scope="module")
def truth(corpus) -> pd.DataFrame:
    return load_truth(corpus).set_index(["dataset", "video", "frame"])


def read_aff_wild2(corpus: Path) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """(task, video) -> (split folder, label lines after the header), checking each file's header."""
    files = {}
    for task, folder in SET_DIRS.items():
        for split in ("Training_Set", "Validation_Set"):
            for path in sorted((corpus / "aff_wild2" / "annotations" / folder / split).glob("*.txt")):
                lines = path.read_text().splitlines()
                assert lines[0] == HEADERS[task], path
                files[task, path.stem] = (split, lines[1:])
    return files


def image_numbers(folder: Path, prefix: str = "", suffix: str = ".jpg") -> set[int]:
    return {int(p.name[len(prefix) : -len(suffix)]) for p in folder.iterdir() if p.name.endswith(suffix)}


# ------------------------------------------------------------------ layout and truth


def test_layout_and_corpus_json(corpus):
    names = sorted(p.name for p in corpus.iterdir())
    assert names == ["afew_va", "aff_wild2", "corpus.json", "disfa", "expw", "truth.csv"]
    info = json.loads((corpus / "corpus.json").read_text())
    assert info["seed"] == 0 and info["preset"]["name"] == "tiny"
    validation = info["aff_wild2"]["validation_videos"]
    assert validation and not set(validation) & set(info["aff_wild2"]["train_videos"])
    test = info["aff_wild2"]["test_videos"]
    assert len(test) == PRESETS["tiny"].aff_wild2_test_videos == 2
    assert not set(test) & set(validation) and not set(test) & set(info["aff_wild2"]["train_videos"])
    for task, folder in SET_DIRS.items():
        listed = {
            p.stem for p in (corpus / "aff_wild2/annotations" / folder / "Validation_Set").glob("*.txt")
        }
        assert listed == set(validation), task  # held-out videos carry every task


def test_truth_is_complete_and_keyed(corpus, truth):
    flat = truth.reset_index()
    assert list(flat.columns) == list(TRUTH_COLUMNS)
    assert not flat.isna().any().any()
    assert truth.index.is_unique
    assert set(flat["dataset"]) == {"aff_wild2", "disfa", "expw", "afew_va"}
    assert flat[list(AU_NAMES)].isin([0, 1]).all().all()
    assert flat["expr"].between(0, 6).all()
    assert flat[["valence", "arousal"]].abs().le(1.0).all().all()
    # One truth row per image (ExpW: per face).
    n_images = sum(1 for _ in (corpus / "aff_wild2" / "cropped_aligned").rglob("*.jpg"))
    n_images += sum(1 for _ in (corpus / "disfa").rglob("*.bmp"))
    n_images += sum(1 for _ in (corpus / "afew_va").rglob("*.png"))
    assert len(flat[flat["dataset"] != "expw"]) == n_images
    info = json.loads((corpus / "corpus.json").read_text())
    assert info["counts"]["aff_wild2"]["frames"] == (flat["dataset"] == "aff_wild2").sum()
    assert "001" in set(flat["video"])  # AFEW-VA clip names keep their zeros


def test_load_truth_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"truth\.csv"):
        load_truth(tmp_path)
    (tmp_path / "truth.csv").write_text("dataset,video\n")
    with pytest.raises(ValueError, match="columns"):
        load_truth(tmp_path)


# ------------------------------------------------------------------ Aff-Wild2


def test_aff_wild2_labels_agree_with_truth(corpus, truth):
    files = read_aff_wild2(corpus)
    checked = dict.fromkeys(SET_DIRS, 0)
    for (task, video), (_, lines) in files.items():
        present = image_numbers(corpus / "aff_wild2" / "cropped_aligned" / video)
        assert max(present) <= len(lines), f"{video}: more images than label lines"
        for k, line in enumerate(lines):
            if k + 1 not in present:
                continue
            row = truth.loc[("aff_wild2", video, k)]
            cells = line.split(",")
            if task == "AU":
                values = [int(c) for c in cells]
                assert len(values) == 8 and set(values) <= {-1, 0, 1}
                if -1 not in values:
                    assert values == row[list(AU_NAMES)].tolist(), (video, k)
                    checked[task] += 1
            elif task == "EXPR":
                assert len(cells) == 1 and -1 <= int(cells[0]) <= 6
                if cells[0] != "-1":
                    assert int(cells[0]) == row["expr"], (video, k)
                    checked[task] += 1
            else:
                v, a = map(float, cells)
                if (v, a) != (-5.0, -5.0):
                    assert (v, a) == (row["valence"], row["arousal"]), (video, k)
                    checked[task] += 1
    assert min(checked.values()) > 50


def test_aff_wild2_quirks_present(corpus):
    files = read_aff_wild2(corpus)
    videos = {video for _, video in files}
    assert any(v.endswith("_left") for v in videos) and any(v.endswith("_right") for v in videos)
    longer, gaps = 0, 0
    for video in videos:
        lines = next(lines for (_, v), (_, lines) in files.items() if v == video)
        present = image_numbers(corpus / "aff_wild2" / "cropped_aligned" / video)
        longer += len(lines) > max(present)
        gaps += len(set(range(1, max(present) + 1)) - present) > 0
        assert {len(lines2) for (_, v), (_, lines2) in files.items() if v == video} == {len(lines)}
    assert longer and gaps
    au_rows = [line.split(",") for (task, _), (_, lines) in files.items() if task == "AU" for line in lines]
    minus_ones = [row.count("-1") for row in au_rows]
    assert 8 in minus_ones and 1 in minus_ones  # whole unannotated rows, and a row with a single -1
    expr = [line for (task, _), (_, lines) in files.items() if task == "EXPR" for line in lines]
    va = [line for (task, _), (_, lines) in files.items() if task == "VA" for line in lines]
    assert "-1" in expr and "-5,-5" in va
    # A video is on one side of the split in every task set.
    sides: dict[str, set[str]] = {}
    for (_, video), (split, _) in files.items():
        sides.setdefault(video, set()).add(split)
    assert all(len(s) == 1 for s in sides.values())


def test_test_videos_have_frames_and_complete_truth_but_no_annotation_files(corpus, truth):
    info = json.loads((corpus / "corpus.json").read_text())["aff_wild2"]
    test = set(info["test_videos"])
    # As in the ABAW 2020 release: no label file of any task or split names a test video...
    annotated = {p.stem for p in (corpus / "aff_wild2" / "annotations").rglob("*.txt")}
    assert annotated == set(info["train_videos"]) | set(info["validation_videos"])
    assert all(info["tasks"][video] == [] for video in test)
    # ...but their frames are in cropped_aligned, one truth row (every label) per jpg.
    crops = corpus / "aff_wild2" / "cropped_aligned"
    assert test <= {p.name for p in crops.iterdir()}
    rows = truth.reset_index()
    rows = rows[(rows["dataset"] == "aff_wild2") & (rows["split"] == "test")]
    assert set(rows["video"]) == test
    for video in test:
        frames = set(rows.loc[rows["video"] == video, "frame"] + 1)
        assert frames == image_numbers(crops / video), video
    assert not rows.isna().any().any()
    assert set(rows["expr"]) == set(range(len(EXPR_NAMES)))  # every class, to report every class's F1


def test_splits_share_no_identity():
    from affect_data.synthetic.corpus import plan_aff_wild2

    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(0).spawn(6)]
    plans = plan_aff_wild2(PRESETS["tiny"], streams[0], streams[5])
    faces: dict[str, set[str]] = {}
    for plan in plans:  # the face itself: the two halves of a pair share only their scene
        faces.setdefault(plan.split, set()).add(repr((plan.identity.shape, plan.identity.skin)))
    assert set(faces) == {"train", "validation", "test"}
    assert not faces["test"] & (faces["train"] | faces["validation"])
    assert not faces["train"] & faces["validation"]
    assert len({plan.name for plan in plans}) == len(plans)


def test_aff_wild2_images_are_112px_jpeg(corpus):
    path = next((corpus / "aff_wild2" / "cropped_aligned").rglob("00001.jpg"))
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (112, 112) and image.mode == "RGB"


# ------------------------------------------------------------------ DISFA


def test_disfa_labels_images_and_truth(corpus, truth):
    labels = corpus / "disfa" / "ActionUnit_Labels"
    subjects = sorted(p.name for p in labels.iterdir())
    assert subjects and all(s.startswith("SN") for s in subjects)
    missing_images = 0
    for subject in subjects:
        table = {}
        for au in DISFA_AUS:
            rows = [
                line.split(",")
                for line in (labels / subject / f"{subject}_au{au}.txt").read_text().splitlines()
            ]
            assert all(len(r) == 2 for r in rows)
            frames = [int(r[0]) for r in rows]
            assert frames == list(range(1, len(rows) + 1))
            table[au] = np.array([int(r[1]) for r in rows])
            assert table[au].min() >= 0 and table[au].max() <= 5
        video = f"LeftVideo{subject}_comp"
        present = image_numbers(
            corpus / "disfa" / video / f"{video}_aligned", prefix="frame_det_00_", suffix=".bmp"
        )
        missing_images += len(frames) - len(present)
        for frame in sorted(present):
            row = truth.loc[("disfa", subject, frame - 1)]
            for au in (1, 2, 4, 6, 12, 15, 20, 25):
                assert row[f"AU{au}"] == int(table[au][frame - 1] >= 2), (subject, frame, au)
                assert row[f"AU{au}_level"] == table[au][frame - 1]
    assert missing_images > 0  # OpenFace lost a few faces
    with Image.open(next((corpus / "disfa").rglob("*.bmp"))) as image:
        assert image.format == "BMP" and image.size == (112, 112)


# ------------------------------------------------------------------ ExpW


def test_expw_label_list(corpus, truth):
    lines = (corpus / "expw" / "label" / "label.lst").read_text().splitlines()
    assert len(lines) > len(set(lines))  # duplicate lines, as in the real file
    faces: dict[str, set[int]] = {}
    for line in set(lines):
        name, face_id, top, left, right, bottom, confidence, label = line.split(" ")
        top, left, right, bottom = map(int, (top, left, right, bottom))
        float(confidence)
        with Image.open(corpus / "expw" / "image" / "origin" / name) as image:
            width, height = image.size
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, line
        row = truth.loc[("expw", f"{name}#{face_id}", 0)]
        assert EXPW_TO_AFF[int(label)] == row["expr"] and row["face_id"] == int(face_id)
        faces.setdefault(name, set()).add(int(face_id))
    assert max(len(ids) for ids in faces.values()) >= 2  # several faces in one image
    assert sum(truth.index.get_level_values("dataset") == "expw") == sum(len(i) for i in faces.values())


# ------------------------------------------------------------------ AFEW-VA


def eye_angle(landmarks: np.ndarray) -> float:
    left, right = landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
    return float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))


def test_afew_va_json_and_frames(corpus, truth):
    clips = sorted(p for p in (corpus / "afew_va").iterdir())
    angles = []
    for clip in clips:
        data = json.loads((clip / f"{clip.name}.json").read_text())
        assert data["video_id"] == clip.name
        pngs = sorted(p.stem for p in clip.glob("*.png"))
        assert sorted(data["frames"]) == pngs and pngs[0] == "00000"
        for key, entry in data["frames"].items():
            assert isinstance(entry["valence"], int) and -10 <= entry["valence"] <= 10
            assert isinstance(entry["arousal"], int) and -10 <= entry["arousal"] <= 10
            marks = np.array(entry["landmarks"])
            assert marks.shape == (68, 2)
            row = truth.loc[("afew_va", clip.name, int(key))]
            assert (row["valence"], row["arousal"]) == (entry["valence"] / 10, entry["arousal"] / 10)
            angles.append(eye_angle(marks))
        with Image.open(clip / "00000.png") as image:
            assert image.size == (160, 160)
    assert max(map(abs, angles)) > 5.0  # faces are turned in the image plane


def test_afew_va_eye_landmarks_on_dark_pixels(corpus):
    clip = sorted((corpus / "afew_va").iterdir())[0]
    data = json.loads((clip / f"{clip.name}.json").read_text())
    for key in ("00000", "00010"):
        pixels = np.asarray(Image.open(clip / f"{key}.png").convert("L"), dtype=float)
        marks = np.rint(np.array(data["frames"][key]["landmarks"])).astype(int)
        eyes = pixels[marks[36:48, 1], marks[36:48, 0]].mean()
        face = pixels[marks[[1, 15, 29, 31, 35], 1], marks[[1, 15, 29, 31, 35], 0]].mean()  # cheeks and nose
        assert eyes < face - 20, (key, eyes, face)


# ------------------------------------------------------------------ determinism and arguments


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


SMALL = Preset(
    name="small",
    aff_wild2_videos=3,
    aff_wild2_validation_videos=1,
    aff_wild2_frames=(12, 16),
    disfa_subjects=1,
    disfa_frames=12,
    expw_images=4,
    afew_va_clips=1,
    afew_va_frames=(8, 10),
    segment_frames=(4, 8),
)


def test_same_seed_gives_identical_files_whatever_the_workers(tmp_path):
    first = tree_digest(write_corpus(tmp_path / "a", preset=SMALL, seed=3))
    second = tree_digest(write_corpus(tmp_path / "b", preset=SMALL, seed=3, n_jobs=2))
    assert first == second
    other = tree_digest(write_corpus(tmp_path / "c", preset=SMALL, seed=4))
    assert other["truth.csv"] != first["truth.csv"]


def corpus_digests(root: Path) -> dict[str, str]:
    """sha256 of the labels of everything but the test split, of the test split's truth rows and corpus.json,
    and of the lossless images. JPEG bytes are left out: they depend on the encoder's version."""
    digests = {name: hashlib.sha256() for name in ("text", "test", "pixels")}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix().encode()
        if path.name == "corpus.json":
            digests["test"].update(key + path.read_bytes())
        elif path.name == "truth.csv":
            lines = path.read_text().splitlines(keepends=True)
            split = TRUTH_COLUMNS.index("split")
            test = [k for k, line in enumerate(lines) if k and line.split(",")[split] == "test"]
            digests["test"].update(key + "".join(lines[k] for k in test).encode())
            kept = set(range(len(lines))) - set(test)
            digests["text"].update(key + "".join(lines[k] for k in sorted(kept)).encode())
        elif path.suffix in (".txt", ".csv", ".lst", ".json"):
            digests["text"].update(key + path.read_bytes())
        elif path.suffix in (".png", ".bmp"):
            digests["pixels"].update(key + np.asarray(Image.open(path)).tobytes())
    return {name: digest.hexdigest() for name, digest in digests.items()}


def test_seeded_corpus_is_pinned(tmp_path):
    # The README's demo figures were produced from a seeded corpus: a change to planning, labels or drawing
    # must be deliberate. "text" and "pixels" are what the corpus held before it had test videos (computed
    # the same way on a corpus written then): the test videos, drawn from their own stream, changed nothing
    # else. "test" pins them and corpus.json.
    digests = corpus_digests(write_corpus(tmp_path / "c", preset=SMALL, seed=3))
    assert digests == {
        "text": "a2c39e9a2804e058eab410a7bd30e84bbf83f5aef557f64c92d6b2f7f08c7fbb",
        "test": "739087917e889a41c203d04313b56d262a1912c5b5274b83073ed150ddd58928",
        "pixels": "b3b08f637c644a00d4cdc910eefcd79bf1adcf3c538e4835606fb014d5f50a49",
    }


def test_target_folder_rules(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        write_corpus(tmp_path / "busy", preset=SMALL)
    with pytest.raises(FileExistsError, match=r"no corpus\.json"):
        write_corpus(tmp_path / "busy", preset=SMALL, overwrite=True)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    root = write_corpus(tmp_path / "empty", preset=SMALL)
    write_corpus(root, preset=SMALL, seed=1, overwrite=True)
    assert json.loads((root / "corpus.json").read_text())["seed"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial folders left


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        write_corpus(tmp_path / "x", preset="huge")
    with pytest.raises(ValueError, match="n_jobs"):
        write_corpus(tmp_path / "x", n_jobs=0)
    with pytest.raises(ValueError, match="aff_wild2_frames"):
        Preset("bad", 3, 1, (10, 5), 1, 10, 1, 1, (5, 6))
    assert set(PRESETS) >= {"tiny", "demo", "study"}


def test_label_writer_rejects_an_unknown_task():
    from affect_data.synthetic.writers import aff_wild2_label_lines

    # Used to fail with a bare KeyError on the header lookup before reaching its ValueError.
    with pytest.raises(
        ValueError, match=r"unknown Aff-Wild2 task 'au'; expected one of \['AU', 'EXPR', 'VA'\]"
    ):
        aff_wild2_label_lines("au", np.zeros(3), np.zeros(3, bool))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # A negative count used to slice the DISFA subject list from the end (26 subjects), silently.
        ({"disfa_subjects": -1}, r"disfa_subjects must be in 0\.\.27 .*got -1"),
        ({"disfa_subjects": 28}, r"disfa_subjects must be in 0\.\.27 .*got 28"),
        ({"expw_images": -2}, r"expw_images must be >= 0, got -2"),
        # Scores are reported on the test videos: a corpus without them would leave nothing to report on.
        ({"aff_wild2_test_videos": 0}, r"aff_wild2_test_videos must be >= 1 .*got 0"),
        ({"segment_frames": (0, 4)}, r"segment_frames .* got \(0, 4\)"),
        ({"two_subject_share": 1.5}, r"two_subject_share must be in \[0, 1\], got 1\.5"),
        ({"expw_faces": (0.5, 0.3)}, r"expw_faces .* got \(0\.5, 0\.3\)"),
        ({"expw_faces": (1.2, -0.2)}, r"expw_faces .*non-negative"),
    ],
)
def test_bad_preset_names_the_field_and_value(change, message):
    with pytest.raises(ValueError, match=rf"preset 'small': {message}"):
        dataclasses.replace(SMALL, **change)


def test_cli_writes_a_corpus(tmp_path, capsys):
    from affect_data.synthetic.__main__ import main

    assert main(["--out", str(tmp_path / "cli"), "--preset", "tiny", "--seed", "1", "--jobs", "1"]) == 0
    assert "aff_wild2" in capsys.readouterr().out
    assert (tmp_path / "cli" / "truth.csv").is_file()
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "cli")])
