"""A synthetic affect corpus written in the real data sets' formats: the project's embedded default.

Faces are drawn with PIL from eight AU intensities (:mod:`.render`, :mod:`.geometry`); expressions
drawn from an imbalanced prior drive the AUs and valence-arousal (:mod:`.labels`); :func:`write_corpus`
renders videos and photos and writes them as Aff-Wild2 (ABAW 2020), DISFA, ExpW and AFEW-VA, each
labelled for its own task only and with the real releases' quirks, plus ``truth.csv``, the complete
labels of every rendered frame.

Aff-Wild2 has three splits of disjoint videos and identities: ``train`` and ``validation`` videos have
annotation files, as in the ABAW 2020 release; held-out ``test`` videos, like that release's test set, have
frames in ``cropped_aligned/`` but no annotation file, so the loader does not see them. Select models on
validation; :func:`aff_wild2_truth_table` gives the test frames with their complete truth to report on.

Example
-------
>>> import tempfile, pathlib
>>> from affect_data.synthetic import write_corpus
>>> root = write_corpus(pathlib.Path(tempfile.mkdtemp()) / "corpus", preset="tiny", seed=0)
>>> (root / "aff_wild2" / "annotations" / "AU_Set" / "Training_Set").is_dir()
True

From the shell: ``python -m affect_data.synthetic --preset demo --out runs/corpus --seed 0 --jobs 2``.
"""

from .corpus import (
    DATASETS,
    PRESETS,
    TRUTH_COLUMNS,
    Preset,
    aff_wild2_truth_table,
    load_truth,
    write_corpus,
)
from .geometry import FaceShape, face_geometry
from .labels import (
    ALL_AU_NAMES,
    AU_PROFILES,
    CIRCUMPLEX,
    EXPRESSION_PRIORS,
    LabelTrack,
    Person,
    sample_person,
    sample_still_labels,
    sample_video_labels,
)
from .render import FrameRenderer, Identity, Pose, render_face, sample_identity

__all__ = [
    "ALL_AU_NAMES",
    "AU_PROFILES",
    "CIRCUMPLEX",
    "DATASETS",
    "EXPRESSION_PRIORS",
    "PRESETS",
    "TRUTH_COLUMNS",
    "FaceShape",
    "FrameRenderer",
    "Identity",
    "LabelTrack",
    "Person",
    "Pose",
    "Preset",
    "aff_wild2_truth_table",
    "face_geometry",
    "load_truth",
    "render_face",
    "sample_identity",
    "sample_person",
    "sample_still_labels",
    "sample_video_labels",
    "write_corpus",
]
