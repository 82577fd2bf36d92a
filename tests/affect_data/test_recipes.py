import copy
import json

import numpy as np
import pandas as pd
import pytest

from affect_data.recipes import PAPER_RECIPE, check_recipe, prepare_task, prepare_tasks
from affect_data.schema import AU_NAMES, as_frame_table


def video_rows(dataset, video, n, split, rng, **labels):
    """n frames of one video; each label argument is a function of the frame number returning a value."""
    rows = pd.DataFrame(
        {
            "dataset": dataset,
            "video": video,
            "frame": np.arange(n),
            "path": [f"/data/{dataset}/{video}/{f:05d}.jpg" for f in range(n)],
            "subject": video,
            "split": split,
        }
    )
    for name, make in labels.items():
        rows[name] = [make(f, rng) for f in range(n)]
    return rows


def au_labels(rate):
    return {name: (lambda f, rng, p=p: int(rng.random() < p)) for name, p in zip(AU_NAMES, rate, strict=True)}


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    common_au = au_labels([0.3, 0.2, 0.4, 0.5, 0.6, 0.05, 0.03, 0.7])
    aff = [
        # AU videos (train and validation), EXPR videos with a dominant class, VA videos.
        video_rows("aff_wild2", "au_a", 200, "train", rng, **common_au),
        video_rows("aff_wild2", "au_b", 150, "train", rng, **common_au),
        video_rows("aff_wild2", "au_val", 60, "validation", rng, **common_au),
        video_rows("aff_wild2", "ex_a", 400, "train", rng, expr=lambda f, r: 0 if r.random() < 0.8 else 4),
        video_rows("aff_wild2", "ex_b", 300, "train", rng, expr=lambda f, r: 4 if r.random() < 0.9 else 2),
        video_rows("aff_wild2", "ex_val", 50, "validation", rng, expr=lambda f, r: 6),
        video_rows(
            "aff_wild2",
            "va_a",
            500,
            "train",
            rng,
            valence=lambda f, r: float(np.clip(r.normal(0.2, 0.2), -1, 1)),
            arousal=lambda f, r: float(np.clip(r.normal(0.1, 0.2), -1, 1)),
        ),
        video_rows(
            "aff_wild2", "va_val", 40, "validation", rng, valence=lambda f, r: 0.0, arousal=lambda f, r: 0.5
        ),
    ]
    disfa = [
        video_rows(
            "disfa", f"SN00{i}", 100, "train", rng, **au_labels([0.4, 0.3, 0.2, 0.2, 0.3, 0.2, 0.1, 0.3])
        )
        for i in range(1, 4)
    ]
    expw = pd.concat(
        [
            video_rows("expw", f"img{i}.jpg#0", 1, "train", rng, expr=lambda f, r, c=c: c)
            for i, c in enumerate(rng.choice(7, 80, p=[0.3, 0.1, 0.05, 0.05, 0.3, 0.1, 0.1]))
        ]
    ).assign(confidence=0.9)
    afew = video_rows(
        "afew_va",
        "001",
        60,
        "train",
        rng,
        valence=lambda f, r: float(r.uniform(-1, 1)),
        arousal=lambda f, r: float(r.uniform(-1, 1)),
    )
    return {
        "aff_wild2": as_frame_table(pd.concat(aff, ignore_index=True)),
        "disfa": as_frame_table(pd.concat(disfa, ignore_index=True)),
        "expw": as_frame_table(expw.reset_index(drop=True)),
        "afew_va": as_frame_table(afew),
    }


def test_au_recipe_merges_aff_wild2_and_disfa_then_oversamples(tables):
    data = prepare_task(tables, "AU", random_state=0)
    assert data.train["dataset"].value_counts().to_dict() == {"aff_wild2": 350, "disfa": 300}
    assert set(data.train["video"]) == {"au_a", "au_b", "SN001", "SN002", "SN003"}
    assert set(data.validation["video"]) == {"au_val"} and len(data.validation) == 60
    assert list(data.train.index) == list(range(650))
    # ML-ROS with P = 25 clones floor(650 * 25 / 100) = 162 rows (while minority bags remain).
    assert len(data.indices) == 650 + 162
    assert np.bincount(data.indices, minlength=650).min() >= 1  # every original stays
    before = data.targets.mean(axis=0)
    after = data.targets[data.indices].mean(axis=0)
    rare = AU_NAMES.index("AU20")
    assert after[rare] > before[rare]
    assert data.sources["disfa"] == {"rows": 300, "step": 1, "kept": 300}


def test_expr_recipe_downsamples_per_video_and_balances_classes(tables):
    data = prepare_task(tables, "EXPR", random_state=0)
    counts = data.train["dataset"].value_counts().to_dict()
    assert counts == {"aff_wild2": 40 + 30, "expw": 80}  # 400 and 300 frames, every 10th
    assert data.sources["aff_wild2"] == {"rows": 700, "step": 10, "kept": 70}
    kept = data.train[data.train["dataset"] == "aff_wild2"]
    assert sorted(kept.loc[kept["video"] == "ex_a", "frame"].tolist()) == list(range(0, 400, 10))
    assert set(data.validation["video"]) == {"ex_val"}
    shares = np.bincount(data.targets[data.indices], minlength=7) / len(data.indices)
    present = np.unique(data.targets)
    np.testing.assert_allclose(shares[present], 1 / len(present), atol=0.01)
    assert len(data.indices) == len(data.train)


def test_va_recipe_downsamples_by_5_and_bins_jointly_with_a_repeat_cap(tables):
    data = prepare_task(tables, "VA", random_state=0)
    assert data.train["dataset"].value_counts().to_dict() == {"aff_wild2": 100, "afew_va": 60}
    assert data.targets.shape == (160, 2)
    assert np.bincount(data.indices).max() <= 10
    assert data.resampler.n_bins == 20 and data.resampler.joint
    # AFEW-VA's values spread over many cells that Aff-Wild2's concentrated ones leave empty, so balancing
    # raises its share above its 60 / 160 share of rows.
    assert (data.train["dataset"].to_numpy()[data.indices] == "afew_va").mean() > 60 / 160 + 0.05


def test_prepare_tasks_is_seeded_and_leaves_inputs_alone(tables):
    snapshot = {name: table.copy() for name, table in tables.items()}
    first = prepare_tasks(tables, random_state=3)
    second = prepare_tasks(tables, random_state=3)
    assert set(first) == {"AU", "EXPR", "VA"}
    for task in first:
        assert np.array_equal(first[task].indices, second[task].indices)
    assert not np.array_equal(first["AU"].indices, prepare_tasks(tables, random_state=4)["AU"].indices)
    for name, table in tables.items():
        pd.testing.assert_frame_equal(table, snapshot[name])


def test_auto_step_matches_the_other_sources(tables):
    recipe = copy.deepcopy(PAPER_RECIPE)
    recipe["tasks"] = {"EXPR": recipe["tasks"]["EXPR"]}
    recipe["tasks"]["EXPR"]["sources"]["aff_wild2"]["step"] = "auto"
    data = prepare_task(tables, "EXPR", recipe, random_state=0)
    assert data.sources["aff_wild2"]["step"] == round(700 / 80)


def test_no_balancing_gives_every_row_once(tables):
    recipe = {"tasks": {"AU": {"sources": {"disfa": {}}}}, "validation": {"source": "aff_wild2"}}
    data = prepare_task(tables, "AU", recipe, random_state=0)
    assert data.resampler is None and sorted(data.indices.tolist()) == list(range(300))


def test_recipe_round_trips_through_json_and_yaml():
    yaml = pytest.importorskip("yaml")
    normal = check_recipe(PAPER_RECIPE)
    assert check_recipe(json.loads(json.dumps(normal))) == normal
    assert check_recipe(yaml.safe_load(yaml.safe_dump(normal))) == normal
    assert normal["tasks"]["AU"]["sources"]["aff_wild2"] == {"step": 1, "split": "train"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.update(taks={}), "recipe key 'taks' is unknown; allowed: tasks, validation"),
        (lambda r: r["tasks"].update(FACS={}), "recipe key 'tasks.FACS' is unknown"),
        (
            lambda r: r["tasks"]["AU"].update(balnce={}),
            "'tasks.AU.balnce' is unknown; allowed: balance, sources",
        ),
        (lambda r: r["tasks"]["VA"]["sources"]["afew_va"].update(stpe=2), "'tasks.VA.sources.afew_va.stpe'"),
        (
            lambda r: r["tasks"]["AU"]["balance"].update(percentag=10),
            "'tasks.AU.balance.percentag' is unknown",
        ),
        (
            lambda r: r["tasks"]["EXPR"]["balance"].update(method="MLROS"),
            "allowed for EXPR: ClassBalancedSampler",
        ),
        (lambda r: r["tasks"]["EXPR"]["sources"]["expw"].update(step=0), "positive integer or 'auto', got 0"),
        (lambda r: r["tasks"]["EXPR"]["sources"]["expw"].update(split="dev"), "'dev'; allowed: train"),
        (lambda r: r["validation"].update(folder="x"), "'validation.folder' is unknown"),
        (lambda r: r["tasks"]["AU"]["balance"].update(random_state=1), "seeds are passed to prepare_task"),
    ],
)
def test_recipe_errors_name_the_key(edit, message):
    recipe = copy.deepcopy(PAPER_RECIPE)
    edit(recipe)
    with pytest.raises(ValueError, match=message):
        check_recipe(recipe)


def test_missing_source_table_is_named(tables):
    with pytest.raises(ValueError, match=r"needs source table\(s\) \['disfa'\]"):
        prepare_task({"aff_wild2": tables["aff_wild2"]}, "AU")
    with pytest.raises(ValueError, match="has no task 'VA'"):
        prepare_task(tables, "VA", {"tasks": {"AU": PAPER_RECIPE["tasks"]["AU"]}})


def test_a_source_without_labelled_rows_is_named(tables):
    # e.g. Aff-Wild2 loaded from an ABAW 2021+ release, whose AU files lack AU20: no complete AU row.
    without_au20 = {**tables, "aff_wild2": tables["aff_wild2"].assign(AU20=pd.NA)}
    with pytest.warns(
        UserWarning, match=r"source 'aff_wild2' has no row in split 'train' with the complete AU"
    ):
        data = prepare_task(without_au20, "AU", random_state=0)
    assert data.sources["aff_wild2"]["rows"] == 0 and len(data.train) == 300  # DISFA only
    no_disfa = {**without_au20, "disfa": tables["disfa"].iloc[:0]}
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match=r"AU recipe's sources \['aff_wild2', 'disfa'\] hold no training row"),
    ):
        prepare_task(no_disfa, "AU", random_state=0)
