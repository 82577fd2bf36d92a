"""Fixtures shared by the test folders: rendered clips of synthetic faces (tests/rendered_faces.py), used by
tests/affect_data (affect_data.video, affect_data.prediction) and tests/examples (``run.py predict``).
(pyproject.toml's pytest ``pythonpath`` puts this folder on the path, for ``from rendered_faces import ...``.)
"""

import pytest


@pytest.fixture(scope="session")
def clip():
    """Rendered frames (RGB uint8) and the 68 landmarks of each face frame (None for blank frames)."""
    from rendered_faces import render_clip

    return render_clip()


@pytest.fixture(scope="session")
def video(clip, tmp_path_factory):
    """The clip as an MPEG-4 video at rendered_faces.FPS frames per second."""
    from rendered_faces import write_video

    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", clip[0])


@pytest.fixture(scope="session")
def image_folder(clip, tmp_path_factory):
    """The clip as a folder of PNG images img_1 ... img_12 (natural order), and a file that is no image."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    for i, image in enumerate(clip[0]):
        Image.fromarray(image).save(folder / f"img_{i + 1}.png")  # img_1 ... img_12: natural order
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def two_faces(tmp_path_factory):
    """A video of rendered_faces.SCENE, its frames and the 68 landmarks of each face in view, per frame."""
    from rendered_faces import render_two_faces, write_video

    frames, marks = render_two_faces()
    path = write_video(tmp_path_factory.mktemp("two") / "two.mp4", frames)
    return path, frames, marks
