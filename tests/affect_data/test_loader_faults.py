"""Property tests: each loader on randomly damaged copies of the tiny synthetic corpus.

Damage: truncated, deleted, repeated and blank lines, swapped columns, bad values, missing, zero-byte and
corrupt images, a byte order mark, UTF-16, Latin-1 and NUL bytes, CRLF and CR-only line endings, and paths
that lead out of the data set (``..``, absolute names, symlinks). Every outcome must be one of:

- a table whose ``LoadReport`` accounts for every input row (``rows_read`` is the number of data rows in the
  damaged files, and equals kept plus skipped), none of whose rows comes from outside the data root;
- an ``AnnotationError`` naming a file of the copy and a line of it (or, for a fault of a whole file or of an
  AFEW-VA frame, saying which).

Any other exception fails the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from affect_data import AnnotationError, load_afew_va, load_aff_wild2, load_disfa, load_expw

FAST = settings(max_examples=25, deadline=None)

BAD_VALUES = [
    "", " ", "x", "nan", "inf", "-inf", "1e400", "-1", "-5", "7", "2", "0.5", "1e3", "１", "²", "0x1",
    "1,2", "é", "../x", "/etc/hostname", "1" * 400,
]  # fmt: skip
#: Damage to annotation text that mostly makes a file malformed (an AnnotationError is the right outcome).
TEXT_OPS = [
    "truncate", "swap", "value", "blank", "delete", "duplicate", "utf16", "latin1", "nul", "empty", "cut",
]  # fmt: skip
#: Text changes that must read as before.
ENCODING_OPS = ["bom", "crlf", "cr"]
IMAGE_OPS = ["img_delete", "img_zero", "img_truncate", "img_text"]

#: One damage: (operation, which file, which line / byte, which field, which bad value).
Damage = tuple[str, int, int, int, str]


def damages(other_ops: list[str]) -> st.SearchStrategy[list[Damage]]:
    """Up to 3 damages a load should survive (``other_ops``, encodings) and, in about half of the examples,
    1 or 2 that may make a file malformed: tables to check, and errors enough."""

    def some(ops: list[str], min_size: int, max_size: int) -> st.SearchStrategy[list[Damage]]:
        one = st.tuples(
            st.sampled_from(ops),
            st.integers(0, 10**6),
            st.integers(0, 10**6),
            st.integers(0, 10**6),
            st.sampled_from(BAD_VALUES),
        )
        return st.lists(one, min_size=min_size, max_size=max_size)

    survivable = some([*ENCODING_OPS, *IMAGE_OPS, *other_ops], 1, 3)
    malformed = st.one_of(st.just([]), some(TEXT_OPS, 1, 2))
    return st.tuples(survivable, malformed).map(lambda parts: parts[0] + parts[1])


def link_outside(folder: Path, linked: Path) -> None:
    """Move ``folder``'s files to ``linked`` (outside the data set) and leave a symlink to it in its place."""
    shutil.copytree(folder, linked, copy_function=os.link)
    shutil.rmtree(folder)
    folder.symlink_to(linked, target_is_directory=True)


# ------------------------------------------------------------------ applying damage to a copy


def copy_of(corpus: Path, part: str, into: Path) -> Path:
    """``corpus/part`` copied with hard links (cheap); :func:`rewrite` breaks a link before writing."""
    shutil.copytree(corpus / part, into / part, copy_function=os.link)
    return into / part


def rewrite(path: Path, data: bytes) -> None:
    path.unlink()  # a hard link into the shared corpus: never write through it
    path.write_bytes(data)


def normalised(data: bytes) -> bytes:
    return data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def damage_text(path: Path, op: str, a: int, b: int, value: str, separator: str | None) -> None:
    data = path.read_bytes()
    lines = data.split(b"\n")
    k = a % len(lines)
    fields = lines[k].split(separator.encode() if separator else None)
    if op == "truncate":
        lines[k] = lines[k][: b % (len(lines[k]) + 1)]
    elif op == "swap" and len(fields) > 1:
        i, j = b % len(fields), (b // 7) % len(fields)
        fields[i], fields[j] = fields[j], fields[i]
        lines[k] = (separator or " ").encode().join(fields)
    elif op == "value" and fields:
        fields[b % len(fields)] = value.encode()
        lines[k] = (separator or " ").encode().join(fields)
    elif op == "blank":
        lines.insert(k, b"")
    elif op == "delete":
        del lines[k]
    elif op == "duplicate":
        lines.insert(k, lines[k])
    elif op == "latin1":
        lines[k] = lines[k][: b % (len(lines[k]) + 1)] + b"\xe9" + lines[k][b % (len(lines[k]) + 1) :]
    elif op == "nul":
        lines[k] = lines[k] + b"\x00"
    data = b"\n".join(lines)
    if op == "bom":
        data = b"\xef\xbb\xbf" + data
    elif op == "utf16":
        data = data.decode("utf-8", errors="replace").encode("utf-16")
    elif op == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif op == "cr":
        data = data.replace(b"\n", b"\r")
    elif op == "empty":
        data = b""
    elif op == "cut":
        data = data[: a % (len(data) + 1)]
    rewrite(path, data)


def damage_image(path: Path, op: str) -> None:
    if not path.exists():
        return
    if op == "img_delete":
        path.unlink()
    elif op == "img_zero":
        rewrite(path, b"")
    elif op == "img_truncate":
        rewrite(path, path.read_bytes()[:100])
    elif op == "img_text":
        rewrite(path, b"not an image at all")


def bait(folder: Path, source_image: Path) -> Path:
    """A readable image outside the data set: a loader that opens it has left its root."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source_image, folder / f"bait{source_image.suffix}")
    return folder / f"bait{source_image.suffix}"


def apply(
    items: list[Damage],
    texts: list[Path],
    images: list[Path],
    separator: str | None,
    special: Callable[[str, int, int], None] | None = None,
) -> None:
    for op, a, b, c, value in items:
        if op in IMAGE_OPS:
            damage_image(sorted(images)[a % len(images)], op)
        elif op in TEXT_OPS or op in ENCODING_OPS:
            damage_text(texts[c % len(texts)], op, a, b, value, separator)
        else:
            special(op, a, b)


# ------------------------------------------------------------------ the invariants


def lines_of(path: Path) -> int:
    return normalised(path.read_bytes()).count(b"\n") + 1


def check_error(error: Exception, root: Path, whole_file: tuple[str, ...]) -> None:
    """An AnnotationError naming a file of the copy and one of its lines (or saying the fault's scope)."""
    assert isinstance(error, AnnotationError), f"{type(error).__name__}: {error}"
    assert error.path.is_file() and error.path.absolute().is_relative_to(root.absolute()), error.path
    assert str(error.path) in str(error)
    if error.line is None:
        assert any(phrase in str(error) for phrase in whole_file), str(error)
    else:
        assert 1 <= error.line <= lines_of(error.path), (error.line, str(error))
    assert len(str(error)) < 1000 + len(str(error.path)), "an error message must not print a file"


def check_table(table: pd.DataFrame, rows_in_files: int, inside: dict[str, Path], forbidden: Path) -> None:
    report = table.attrs["report"]
    assert report.rows_read == rows_in_files, report.summary()
    assert report.rows_read == report.rows_kept + report.total_skipped == len(table) + report.total_skipped
    for column, root in inside.items():
        real_root = os.path.realpath(root)
        for path in table[column]:
            assert os.path.realpath(path).startswith(real_root + os.sep), (column, path)
    for column in inside:
        assert not any(os.path.realpath(p).startswith(os.path.realpath(forbidden)) for p in table[column])


def outcome(load: Callable[[], pd.DataFrame]) -> tuple[pd.DataFrame | None, Exception | None]:
    try:
        table = load()
    except Exception as error:  # the property: only AnnotationError may escape, checked by check_error
        event(f"error: {type(error).__name__}")
        return None, error
    event("table")
    for reason in sorted(set(table.attrs["report"].to_frame()["reason"])):
        event(f"table with {reason}")
    return table, None


# ------------------------------------------------------------------ Aff-Wild2


def aff_wild2_rows(root: Path) -> int:
    total = 0
    for path in (root / "annotations").rglob("*.txt"):
        lines = [line for line in normalised(path.read_bytes()).split(b"\n") if line.strip()]
        total += len(lines) - 1  # the header
    return total


@FAST
@given(items=damages(["dots", "link"]))
def test_aff_wild2_survives_damage_or_names_the_line(tiny_corpus, items):
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        root = copy_of(tiny_corpus, "aff_wild2", work)
        texts = sorted((root / "annotations").rglob("*.txt"))
        images = sorted((root / "cropped_aligned").rglob("*.jpg"))
        outside = work / "outside"
        bait(outside / "00001", images[0])

        def special(op: str, a: int, _: int) -> None:
            if op == "dots":  # "...txt" names video "..": its images would be read from above the crops
                label = texts[a % len(texts)]
                if not (label.parent / "...txt").exists():
                    texts[a % len(texts)] = label.rename(label.parent / "...txt")  # later damage follows
            else:  # a crop folder replaced by a symlink to a folder outside the data set
                folders = sorted(p for p in (root / "cropped_aligned").iterdir() if not p.is_symlink())
                folder = folders[a % len(folders)]
                link_outside(folder, outside / f"linked_{folder.name}")

        apply(items, texts, images, ",", special)
        table, error = outcome(lambda: load_aff_wild2(root))
        if error is not None:
            check_error(error, root, whole_file=("label lines but",))
        else:
            check_table(table, aff_wild2_rows(root), {"path": root / "cropped_aligned"}, outside)


# ------------------------------------------------------------------ DISFA


def disfa_rows(root: Path) -> int:
    return sum(
        len([line for line in normalised(path.read_bytes()).split(b"\n") if line.strip()])
        for path in (root / "ActionUnit_Labels").glob("*/*_au1.txt")
    )


@FAST
@given(items=damages(["link"]))
def test_disfa_survives_damage_or_names_the_line(tiny_corpus, items):
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        root = copy_of(tiny_corpus, "disfa", work)
        texts = sorted((root / "ActionUnit_Labels").rglob("*.txt"))
        images = sorted(root.glob("LeftVideo*/*/*.bmp"))
        outside = work / "outside"
        bait(outside, images[0])

        def special(op: str, a: int, _: int) -> None:  # a subject's image folder linked to outside
            folders = sorted(p for p in root.glob("LeftVideo*/*_aligned") if not p.is_symlink())
            if folders:
                folder = folders[a % len(folders)]
                link_outside(folder, outside / folder.name)

        apply(items, texts, images, ",", special)
        table, error = outcome(lambda: load_disfa(root))
        if error is not None:
            check_error(error, root, whole_file=("frames but",))
        else:
            check_table(table, disfa_rows(root), {"path": root}, outside)


# ------------------------------------------------------------------ ExpW


def expw_rows(root: Path) -> int:
    text = normalised((root / "label" / "label.lst").read_bytes()).decode("utf-8")
    return sum(1 for line in text.split("\n") if line.split())


@FAST
@given(items=damages(["up", "absolute", "link"]))
# Damage may empty label.lst: the loader's warning about that is an outcome this test allows.
@pytest.mark.filterwarnings("ignore::affect_data.loaders._io.EmptyAnnotationWarning")
def test_expw_survives_damage_or_names_the_line(tiny_corpus, items):
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        root = copy_of(tiny_corpus, "expw", work)
        label = root / "label" / "label.lst"
        origin = root / "image" / "origin"
        images = sorted(origin.glob("*.jpg"))
        outside = work / "outside"
        target = bait(outside, images[0])

        def special(op: str, a: int, _: int) -> None:  # one line's image name leads to the bait
            lines = label.read_bytes().split(b"\n")
            k = a % len(lines)
            fields = lines[k].split(b" ")
            if op == "up":
                fields[0] = b"../../../outside/" + target.name.encode()
            elif op == "absolute":
                fields[0] = str(target).encode()
            else:
                link = origin / f"link_{k}.jpg"
                if not link.exists():
                    link.symlink_to(target)
                fields[0] = link.name.encode()
            lines[k] = b" ".join(fields)
            rewrite(label, b"\n".join(lines))

        apply(items, [label], images, None, special)
        crops = work / "crops"
        table, error = outcome(lambda: load_expw(root, cache_dir=crops))
        if error is not None:
            check_error(error, root, whole_file=())
        else:
            check_table(table, expw_rows(root), {"source": origin, "path": crops}, outside)


# ------------------------------------------------------------------ AFEW-VA

JSON_OPS = ["j_value", "j_swap", "j_drop", "j_nan", "j_far", "j_key", "j_pairs"]


def afew_va_rows(root: Path) -> int:
    total = 0
    for clip in root.iterdir():
        if clip.is_dir() and clip.name.isdigit():
            total += len(json.loads(normalised((clip / f"{clip.name}.json").read_bytes()))["frames"])
    return total


def damage_json(path: Path, op: str, a: int, b: int, value: str) -> None:
    """Structural damage to one frame of a clip's JSON, written back as JSON (NaN allowed, as Python does)."""
    document = json.loads(path.read_bytes())
    frames = document["frames"]
    key = sorted(frames)[a % len(frames)]
    frame = frames[key]
    if op == "j_value":
        frame["valence" if b % 2 else "arousal"] = [value, None, 11, True, 10**400][b % 5]
    elif op == "j_swap":
        frame["valence"], frame["landmarks"] = frame["landmarks"], frame["valence"]
    elif op == "j_drop":
        del frame[["valence", "arousal", "landmarks"][b % 3]]
    elif op == "j_nan":
        frame["landmarks"][b % 68][b % 2] = float("nan")
    elif op == "j_far":
        frame["landmarks"] = [[x + 10_000, y] for x, y in frame["landmarks"]]
    elif op == "j_key":
        frames[["../00001", "²", "-1", "1" * 30, "00000 "][b % 5]] = frames.pop(key)
    elif op == "j_pairs":
        frame["landmarks"] = frame["landmarks"][: b % 68]
    rewrite(path, json.dumps(document).encode())


@FAST
@given(items=damages([*JSON_OPS, "link"]))
def test_afew_va_survives_damage_or_names_the_line(tiny_corpus, items):
    with tempfile.TemporaryDirectory() as temporary:
        work = Path(temporary)
        root = copy_of(tiny_corpus, "afew_va", work)
        documents = sorted(root.glob("*/*.json"))
        images = sorted(root.glob("*/*.png"))
        outside = work / "outside"

        def special(op: str, a: int, b: int) -> None:
            if op == "link":  # a clip folder that is a symlink to a clip outside the data set
                clip = documents[a % len(documents)].parent
                linked = outside / "999"
                if not linked.exists():
                    shutil.copytree(clip, linked, copy_function=os.link)
                    os.link(linked / f"{clip.name}.json", linked / "999.json")
                    (root / "999").symlink_to(linked, target_is_directory=True)
            else:
                # An earlier damage may have made the document unreadable: then there is nothing to damage.
                with contextlib.suppress(ValueError, KeyError, TypeError, IndexError):
                    damage_json(documents[b % len(documents)], op, a, b, BAD_VALUES[a % len(BAD_VALUES)])

        apply(items, documents, images, None, special)
        crops = work / "crops"
        table, error = outcome(lambda: load_afew_va(root, cache_dir=crops, size=32))
        if error is not None:
            check_error(error, root, whole_file=("frame ", "'frames' mapping"))
        else:
            check_table(table, afew_va_rows(root), {"source": root, "path": crops}, outside)
