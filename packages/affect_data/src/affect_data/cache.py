"""A prepared cache of face crops: every image decoded once, resized, and stored as uint8 in one memory map.

Training reads the same crops for many epochs; decoding a JPEG costs far more than copying its pixels, so the
datasets accept a :class:`FrameCache` and then skip decoding entirely. The cache is a folder::

    crops.u8     raw uint8 array [n_rows, size, size, 3] (numpy memmap, C order)
    index.csv    one line per cached image: cache row, image path
    meta.json    format version, size, shape, counts, the images skipped while building, and the byte size
                 and checksums of the two other files

Build it once with :func:`build_frame_cache` at the size the datasets resize to before cropping
(``transforms.resized_size(112) == 134``). The build writes into a temporary sibling folder and renames it
into place only when complete, so an interrupted build never leaves a folder that opens. A killed build
leaves that hidden folder (and an earlier cache moved aside) behind; :data:`PARTIAL_FOLDER` matches their
names, as it does those that a killed :func:`affect_data.synthetic.write_corpus` leaves.

Damage is detected, and named in a :class:`CacheError` (a ``ValueError``) that names the file and says to
rebuild:

- opening checks the format, the recorded byte sizes of ``crops.u8`` and ``index.csv`` (a truncated,
  extended or deleted file, index lines missing or added), the index's row count and the size;
- :meth:`FrameCache.verify` checks the sizes again and the checksums: the whole of ``index.csv`` (small),
  and BLAKE2b digests of 4 MiB blocks of ``crops.u8``. By default it reads a sample of blocks, always the
  first and the last (about 40 MiB, a fraction of a second), which catches a file zeroed or rewritten at the
  same size, and damage to any sampled block; ``full=True`` reads every block and catches any changed byte.

Unreadable images (missing, corrupt, truncated) while building: with ``on_error="skip"`` (the default, so that
one bad frame in millions does not end a long build) they are left out, counted, listed with the reason in
``meta.json`` and on :attr:`FrameCache.skipped`, and reported in a warning; with ``on_error="raise"`` the
first one stops the build with an ``OSError`` naming the file. A table row whose image was skipped cannot be
served from the cache: :meth:`FrameCache.rows_for` names it, and :meth:`FrameCache.covers` filters such rows.
:func:`unreadable_images` applies the same test without building a cache, for training straight from the
image files.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from affect_data._atomic import PARTIAL_FOLDER as PARTIAL_FOLDER  # public here: see the docstring
from affect_data._atomic import atomic_folder
from affect_data.faces import IMAGE_ERRORS
from affect_data.transforms import load_image
from mtl_distill.logging_utils import progress as progress_bar

#: 2: meta.json records the byte size and checksums of crops.u8 and index.csv.
FORMAT_VERSION = 2
ARRAY_FILE = "crops.u8"
INDEX_FILE = "index.csv"
META_FILE = "meta.json"
#: Bytes of crops.u8 covered by one recorded digest: small enough that a sampled check stays cheap, large
#: enough that meta.json stays small (a 100 GB cache has 25,000 digests).
BLOCK_BYTES = 4 << 20
#: Blocks of crops.u8 that :meth:`FrameCache.verify` reads by default, besides the first and the last.
VERIFY_SAMPLES = 8


class CacheError(ValueError):
    """A crop cache whose files do not match what was recorded when it was built. Rebuild it.

    Attributes
    ----------
    path : pathlib.Path
        The damaged file.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = Path(path)
        super().__init__(
            f"{self.path}: {problem}; the crop cache {self.path.parent} is damaged or stale: rebuild it "
            "(build_frame_cache(..., overwrite=True))"
        )


class FrameCache:
    """Open a crop cache folder written by :func:`build_frame_cache`, validating it.

    The memory map opens lazily and is not pickled, so a dataset holding the cache can be sent to DataLoader
    worker processes cheaply; each worker maps the file itself.

    Parameters
    ----------
    folder : str or os.PathLike
        The cache folder.
    size : int, optional
        Expected crop side; a different one is an error.

    Raises
    ------
    FileNotFoundError
        If the folder or its ``meta.json`` does not exist.
    CacheError
        If the format, a file's recorded byte size or the index's row count do not match (a damaged or
        stale cache: rebuild it).
    ValueError
        If ``size`` is not the cache's.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (40, 40), (10, 20, 30)).save(folder / "a.png")
    >>> cache = build_frame_cache([folder / "a.png"], folder / "cache", size=16)
    >>> cache[0].shape, len(cache)
    ((16, 16, 3), 1)
    """

    def __init__(self, folder: str | os.PathLike, size: int | None = None) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path} does not exist: {self.folder} is not a finished crop cache "
                "(build one with affect_data.cache.build_frame_cache)"
            )
        meta = _read_meta(meta_path)
        self.size: int = int(meta["size"])
        self.n_rows: int = int(meta["n_rows"])
        self.skipped: list[dict[str, str]] = list(meta["skipped"])
        self._files: dict[str, dict] = meta["files"]
        if size is not None and size != self.size:
            raise ValueError(f"{self.folder} holds {self.size} px crops; {size} px were asked for")
        expected = self.n_rows * self.size * self.size * 3
        if self._files[ARRAY_FILE]["bytes"] != expected:
            raise CacheError(
                meta_path,
                f"records {self._files[ARRAY_FILE]['bytes']} bytes for {ARRAY_FILE}, but its shape "
                f"({self.n_rows}, {self.size}, {self.size}, 3) needs {expected}",
            )
        self._check_sizes()
        # Paths are read verbatim: without keep_default_na a file called "NA" or "null" would become NaN.
        index = pd.read_csv(
            self.folder / INDEX_FILE, dtype={"row": np.int64, "path": str}, keep_default_na=False
        )
        if len(index) != self.n_rows - len(self.skipped):
            raise CacheError(
                self.folder / INDEX_FILE,
                f"lists {len(index)} images; meta.json says {self.n_rows - len(self.skipped)} "
                f"({self.n_rows} rows, {len(self.skipped)} skipped)",
            )
        rows = index["row"].to_numpy()
        outside = rows[(rows < 0) | (rows >= self.n_rows)]
        if outside.size:
            raise CacheError(
                self.folder / INDEX_FILE,
                f"refers to row {outside[0]} outside the {self.n_rows} rows of {ARRAY_FILE}",
            )
        self.paths: list[str] = index["path"].tolist()
        self._row_of = pd.Series(index["row"].to_numpy(), index=pd.Index(index["path"]))
        self._array: np.ndarray | None = None

    def _check_sizes(self) -> None:
        """Raise :class:`CacheError` unless crops.u8 and index.csv have their recorded byte sizes."""
        for name in (ARRAY_FILE, INDEX_FILE):
            path = self.folder / name
            recorded = self._files[name]["bytes"]
            try:
                actual = path.stat().st_size
            except FileNotFoundError:
                raise CacheError(path, "is missing") from None
            if actual != recorded:
                raise CacheError(
                    path,
                    f"holds {actual} bytes; meta.json records {recorded} (truncated, extended or replaced?)",
                )

    def verify(self, full: bool = False, samples: int = VERIFY_SAMPLES) -> None:
        """Check the cache's files against the sizes and checksums recorded when it was built.

        Sizes are checked again (the files may have changed since the cache was opened), then the checksum
        of the whole ``index.csv`` and of blocks of ``crops.u8``: the first, the last and ``samples`` evenly
        spaced ones (4 MiB each), or every block with ``full=True``. The default reads at most
        ``(samples + 2) * 4 MiB``: it catches a truncated, deleted, zeroed or rewritten file, and damage to
        any block it reads; only ``full=True`` catches a change confined to a block it skips.

        Parameters
        ----------
        full : bool, default False
            Read every block of ``crops.u8`` (as long as reading the whole file).
        samples : int, default 8
            Evenly spaced blocks read besides the first and the last.

        Raises
        ------
        CacheError
            Naming the damaged file (and the rows of a damaged block) and saying to rebuild the cache.
        """
        self._check_sizes()
        index = self.folder / INDEX_FILE
        if _digest(index.read_bytes()) != self._files[INDEX_FILE]["blake2b"]:
            raise CacheError(index, "does not match its checksum (edited or damaged)")
        digests = self._files[ARRAY_FILE]["blake2b"]
        block_bytes = self._files[ARRAY_FILE]["block_bytes"]
        n_blocks = len(digests)
        if full or n_blocks <= samples + 2:
            blocks = range(n_blocks)
        else:
            blocks = sorted(set(np.linspace(0, n_blocks - 1, samples + 2).round().astype(int).tolist()))
        row_bytes = self.size * self.size * 3
        with open(self.folder / ARRAY_FILE, "rb") as file:
            for block in blocks:
                start = block * block_bytes
                file.seek(start)
                if _digest(file.read(block_bytes)) != digests[block]:
                    end = min(start + block_bytes, self.n_rows * row_bytes)
                    raise CacheError(
                        self.folder / ARRAY_FILE,
                        f"block {block} (bytes {start} to {end}, rows {start // row_bytes} to "
                        f"{(end - 1) // row_bytes}) does not match its checksum (zeroed or overwritten?)",
                    )

    @property
    def array(self) -> np.ndarray:
        """The read-only uint8 memmap ``[n_rows, size, size, 3]`` (skipped images leave zero rows)."""
        if self._array is None:
            shape = (self.n_rows, self.size, self.size, 3)
            mapped = np.memmap(self.folder / ARRAY_FILE, dtype=np.uint8, mode="r", shape=shape)
            # A plain ndarray view of the mapping: slicing it skips np.memmap's per-slice bookkeeping.
            self._array = mapped.view(np.ndarray)
        return self._array

    def __len__(self) -> int:
        return self.n_rows

    def __getitem__(self, row) -> np.ndarray:
        return self.array[row]

    def covers(self, table: pd.DataFrame) -> np.ndarray:
        """Boolean mask of the ``table`` rows whose image is in the cache."""
        return table["path"].astype(str).isin(self._row_of.index).to_numpy()

    def rows_for(self, paths: pd.DataFrame | Iterable[str | os.PathLike]) -> np.ndarray:
        """Cache rows of image paths (or of a frame table's ``path`` column), as int64.

        Raises
        ------
        KeyError
            Naming the first path that is not in the cache and how many are missing.
        """
        keys = pd.Index(_path_strings(paths))
        position = self._row_of.index.get_indexer(keys)
        if (position < 0).any():
            missing = keys[position < 0]
            skipped = {entry["path"] for entry in self.skipped}
            why = " (skipped while building: unreadable)" if missing[0] in skipped else ""
            raise KeyError(
                f"{len(missing)} image(s) are not in the crop cache {self.folder}, e.g. {missing[0]}{why}; "
                "rebuild the cache for this table or drop those rows (FrameCache.covers)"
            )
        return self._row_of.to_numpy()[position]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None  # never pickle the mapped pixels; the receiving process maps the file again
        return state

    def __repr__(self) -> str:
        return f"FrameCache({str(self.folder)!r}, size={self.size}, rows={self.n_rows})"


def build_frame_cache(
    paths: pd.DataFrame | Iterable[str | os.PathLike],
    folder: str | os.PathLike,
    size: int,
    num_workers: int = 0,
    on_error: str = "skip",
    overwrite: bool = False,
    chunk_size: int = 512,
    progress: bool = False,
) -> FrameCache:
    """Decode every distinct image once, resize it to ``size``, and store the pixels in a new cache folder.

    Parameters
    ----------
    paths : pandas.DataFrame or iterable of paths
        Image files, or a frame table (its ``path`` column). Duplicates are stored once.
    folder : str or os.PathLike
        The cache folder to create.
    size : int
        Side of the stored crops; use ``transforms.resized_size(crop_size)`` (134 for 112 px crops).
    num_workers : int, default 0
        Decoding processes; 0 decodes in this process.
    on_error : {"skip", "raise"}, default "skip"
        What an unreadable image does: left out and counted (see the module docstring), or an ``OSError``.
    overwrite : bool, default False
        Replace an existing cache folder; otherwise an existing folder is an error.
    chunk_size : int, default 512
        Images per task handed to a worker.
    progress : bool, default False
        Draw a progress bar over the chunks of images (tqdm, when installed: ``mtl-distill[progress]``;
        ``TQDM_DISABLE=1`` turns it off).

    Returns
    -------
    FrameCache
        The opened cache.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists; pass overwrite=True to replace it")
    unique = list(dict.fromkeys(_path_strings(paths)))
    if any("\n" in p for p in unique):
        raise ValueError("image paths must not contain newlines")

    with atomic_folder(folder, replace=overwrite) as temporary:
        array_path = temporary / ARRAY_FILE
        shape = (len(unique), size, size, 3)
        if unique:  # np.memmap cannot map an empty file
            np.memmap(array_path, dtype=np.uint8, mode="w+", shape=shape).flush()
        else:
            array_path.touch()
        chunks = [
            (str(array_path), shape, start, unique[start : start + chunk_size], on_error)
            for start in range(0, len(unique), chunk_size)
        ]
        description = f"crop cache: {len(unique)} images"
        if num_workers > 0:
            with ProcessPoolExecutor(num_workers) as pool:
                parts = progress_bar(
                    pool.map(_fill_rows, chunks), total=len(chunks), desc=description, enabled=progress
                )
                failures = [f for part in parts for f in part]
        else:
            parts = progress_bar(
                map(_fill_rows, chunks), total=len(chunks), desc=description, enabled=progress
            )
            failures = [f for part in parts for f in part]

        failed = {row for row, _, _ in failures}
        index = pd.DataFrame({"row": np.arange(len(unique)), "path": unique})
        index[~index["row"].isin(failed)].to_csv(temporary / INDEX_FILE, index=False)
        skipped = [{"path": path, "error": error} for _, path, error in sorted(failures)]
        index_bytes = (temporary / INDEX_FILE).read_bytes()
        files = {
            ARRAY_FILE: {
                "bytes": array_path.stat().st_size,
                "block_bytes": BLOCK_BYTES,
                "blake2b": _block_digests(array_path, BLOCK_BYTES),
            },
            INDEX_FILE: {"bytes": len(index_bytes), "blake2b": _digest(index_bytes)},
        }
        meta = {
            "format": FORMAT_VERSION,
            "size": size,
            "n_rows": len(unique),
            "skipped": skipped,
            "files": files,
        }
        (temporary / META_FILE).write_text(json.dumps(meta, indent=1))
    if skipped:
        warnings.warn(
            f"crop cache {folder}: skipped {len(skipped)} unreadable image(s), e.g. {skipped[0]['path']} "
            f"({skipped[0]['error']}); listed in {folder / META_FILE}",
            stacklevel=2,
        )
    return FrameCache(folder, size=size)


def unreadable_images(
    paths: pd.DataFrame | Iterable[str | os.PathLike],
    num_workers: int = 0,
    chunk_size: int = 512,
    progress: bool = False,
) -> dict[str, str]:
    """The images that cannot be decoded, each with the reason, by the test :func:`build_frame_cache` applies.

    Every distinct image is decoded in full (a truncated JPEG opens, and fails only when its pixels are
    read), which costs about what building the cache costs, without writing anything. Use it to drop the
    rows of unreadable images before training from the image files, so that no epoch meets one.

    Parameters
    ----------
    paths : pandas.DataFrame or iterable of paths
        Image files, or a frame table (its ``path`` column).
    num_workers : int, default 0
        Decoding processes; 0 decodes in this process.
    chunk_size : int, default 512
        Images per task handed to a worker.
    progress : bool, default False
        Draw a progress bar over the chunks of images, as :func:`build_frame_cache` does.

    Returns
    -------
    dict
        Path (as given) -> error message, for the images that are missing or cannot be decoded.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> Image.new("RGB", (8, 8)).save(folder / "ok.png")
    >>> (folder / "empty.jpg").write_bytes(b"")
    0
    >>> sorted(pathlib.Path(p).name for p in unreadable_images([folder / "ok.png", folder / "empty.jpg"]))
    ['empty.jpg']
    """
    unique = list(dict.fromkeys(_path_strings(paths)))
    chunks = [unique[start : start + chunk_size] for start in range(0, len(unique), chunk_size)]
    description = f"decoding {len(unique)} images"
    if num_workers > 0 and len(chunks) > 1:
        with ProcessPoolExecutor(num_workers) as pool:
            parts = progress_bar(
                pool.map(_unreadable_in, chunks), total=len(chunks), desc=description, enabled=progress
            )
            return dict(failure for part in parts for failure in part)
    parts = progress_bar(map(_unreadable_in, chunks), total=len(chunks), desc=description, enabled=progress)
    return dict(failure for part in parts for failure in part)


def _unreadable_in(paths: list[str]) -> list[tuple[str, str]]:
    failures = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.convert("RGB")  # decodes every pixel, as load_image does: truncation surfaces here
        except IMAGE_ERRORS as err:
            failures.append((path, str(err)))
    return failures


def _read_meta(path: Path) -> dict:
    """``meta.json`` of a cache, checked for its format version and keys."""
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CacheError(path, f"not valid JSON ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise CacheError(path, f"cache format {found!r}, expected {FORMAT_VERSION}")
    absent = [key for key in ("size", "n_rows", "skipped", "files") if key not in meta]
    if absent:
        raise CacheError(path, f"lacks key(s) {absent}")
    files = meta["files"]
    wanted = {ARRAY_FILE: {"bytes", "block_bytes", "blake2b"}, INDEX_FILE: {"bytes", "blake2b"}}
    if not isinstance(files, dict) or any(
        not isinstance(files.get(name), dict) or not keys <= files[name].keys()
        for name, keys in wanted.items()
    ):
        raise CacheError(path, "'files' lacks the byte sizes and checksums of crops.u8 and index.csv")
    return meta


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _block_digests(path: Path, block_bytes: int) -> list[str]:
    """The digest of every ``block_bytes`` block of ``path``, in order."""
    digests = []
    with open(path, "rb") as file:
        while block := file.read(block_bytes):
            digests.append(_digest(block))
    return digests


def _fill_rows(task: tuple) -> list[tuple[int, str, str]]:
    """Decode one chunk of images into their rows of the array file; return the failures."""
    array_path, shape, start, paths, on_error = task
    array = np.memmap(array_path, dtype=np.uint8, mode="r+", shape=shape)
    failures = []
    for row, path in enumerate(paths, start):
        try:
            array[row] = load_image(path, shape[1])
        except OSError as err:
            if on_error == "raise":
                raise
            failures.append((row, path, str(err.__cause__ or err)))
    array.flush()
    return failures


def _path_strings(paths: pd.DataFrame | Iterable[str | os.PathLike]) -> list[str]:
    if isinstance(paths, pd.DataFrame):
        if "path" not in paths.columns:
            raise ValueError("the table has no 'path' column")
        if paths["path"].isna().any():
            raise ValueError(f"{int(paths['path'].isna().sum())} table row(s) have no image path")
        paths = paths["path"]
    return [os.fspath(p) for p in paths]
