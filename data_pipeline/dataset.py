"""Reading a dataset directory for a model: tf.data pipelines and splits as NumPy arrays.

  make_dataset       one split as a tf.data pipeline of batches (training, evaluation)
  load_glyphs        one split's glyphs as NumPy arrays, in the dataset's deterministic order
  split_keys         the record keys of a split in that order
  glyphs_in_charset  the same with char ids re-mapped into another charset (a model's)

Images come as float32 in [-1, 1] (ink +1, schema.to_float) brought to the model's resolution;
char and writer ids index the manifest's charset and writers. The files themselves (shards,
manifest, verification) are data_pipeline.tfrecords'.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from data_pipeline import charset as charset_lib
from data_pipeline import schema
from data_pipeline.tfrecords import DatasetError, load_manifest, shard_paths, verify_dataset

PARSE_BLOCK = 256  # grouped pipelines parse records in blocks of this many before regrouping
RESIZE_MODES = ("auto", "pad", "resize")


def make_lookup(keys: Sequence[str]):
    """String -> index table; unknown strings give -1."""
    import tensorflow as tf

    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(keys), tf.string),
                                            tf.range(len(keys), dtype=tf.int32)), -1)


def make_dataset(data_dir, split: str, batch_size: int, *, image_size: Optional[int] = None,
                 resize: str = "auto", shuffle: bool = True, seed: int = 0, repeat: bool = True,
                 cache: bool = False, shuffle_buffer: int = 10000, drop_remainder: bool = True,
                 input_context=None, expected_charset: Optional[Sequence[str]] = None,
                 with_geometry: bool = False, verify: bool = False, skip_batches: int = 0,
                 group_size: int = 1, exclude_chars: Sequence[str] = ()):
    """A tf.data pipeline over one split of a dataset directory.

    Elements: {"image": float32 [B, H, W, 1] in [-1, 1] (ink +1), "char": int32 [B] (index into
    the manifest's charset), "writer": int32 [B] (index into the manifest's writers)} plus
    "geometry": float32 [B, 4] if with_geometry (NaN where unknown).

    batch_size is the GLOBAL batch; with a tf.distribute.InputContext the per-replica batch is
    returned and input is sharded per worker (by file when there are enough shards, else by
    record). image_size resizes to the model's resolution: "auto" pads when the target is at most
    1/4 larger (EMNIST 28 -> 32 keeps its strokes crisp) and resizes with area/bilinear otherwise;
    "pad" / "resize" force one. `verify` checks every shard's sha256 first. `skip_batches` skips
    that many batches' records before batching, cheaply (no parsing): a resumed run sees exactly
    the batches an uninterrupted one would have.

    group_size > 1 (stylegan training) makes every run of `group_size` consecutive examples of a
    batch come from one writer (grouped within the shuffle buffer); the per-replica batch must be
    a multiple of it. Skipping then happens after grouping (parsing the skipped records).

    `exclude_chars` (charset labels) drops every record of those characters before batching (and
    grouping): a model trained on it never sees them (the few-shot family's held-out characters,
    which must then come from their font image alone). A label not in the charset is a
    ValueError naming it.
    """
    import tensorflow as tf

    manifest = _checked_manifest(data_dir, expected_charset, verify)
    files = shard_paths(data_dir, split, manifest)
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} must be >= 1")
    per_replica = (batch_size if input_context is None
                   else input_context.get_per_replica_batch_size(batch_size))
    ds = _serialized_records(files, input_context, shuffle, seed, cache, shuffle_buffer, repeat)
    if group_size < 1 or per_replica % group_size:
        raise ValueError(f"group_size {group_size} must be >= 1 and divide the per-replica batch "
                         f"{per_replica}")
    excluded = _excluded_ids(manifest, exclude_chars, data_dir)
    regroup = group_size > 1 or bool(excluded)
    if regroup:
        ds = ds.batch(PARSE_BLOCK)  # parse in blocks, then regroup single examples
    else:
        if skip_batches:
            ds = ds.skip(int(skip_batches) * per_replica)
        ds = ds.batch(per_replica, drop_remainder=drop_remainder)
    rows = per_replica if drop_remainder and not regroup else -1
    parse = _batch_parser(manifest, data_dir, rows, image_size, resize, with_geometry)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if regroup:
        ds = ds.unbatch()
        if excluded:
            ids = tf.constant(excluded, tf.int32)
            ds = ds.filter(lambda e: tf.logical_not(tf.reduce_any(tf.equal(e["char"], ids))))
        if group_size > 1:
            ds = _group_by_writer(ds, group_size, per_replica, skip_batches)
        else:
            ds = ds.batch(per_replica, drop_remainder=drop_remainder)
            if skip_batches:
                ds = ds.skip(int(skip_batches))
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_deterministic = True
    return ds.with_options(options)


def _excluded_ids(manifest: dict, exclude_chars: Sequence[str], data_dir) -> list[int]:
    """Charset indices of `exclude_chars`; ValueError naming a label the charset lacks."""
    charset = list(manifest["charset"])
    missing = [c for c in exclude_chars if c not in charset]
    if missing:
        raise ValueError(f"characters to leave out {missing} are not in the charset of "
                         f"{data_dir}")
    return sorted({charset.index(c) for c in exclude_chars})


def _checked_manifest(data_dir, expected_charset: Optional[Sequence[str]], verify: bool) -> dict:
    """The manifest, its charset checked against the model's and, with `verify`, every shard's
    size and sha256 against it."""
    manifest = load_manifest(data_dir)
    if expected_charset is not None:
        charset_lib.check_same_charset(expected_charset, manifest["charset"], "the model",
                                       f"dataset {data_dir}")
    if verify:
        problems = verify_dataset(data_dir, deep=False)
        if problems:
            raise DatasetError("; ".join(problems))
    return manifest


def _serialized_records(files: list[str], input_context, shuffle: bool, seed: int, cache: bool,
                        shuffle_buffer: int, repeat: bool):
    """The serialized records of the shard files: this worker's share, shuffled (files, then a
    buffer of records), cached and repeated as asked."""
    import tensorflow as tf

    pipelines = 1 if input_context is None else input_context.num_input_pipelines
    by_file = pipelines > 1 and len(files) >= pipelines
    ds = tf.data.Dataset.from_tensor_slices(files)
    if by_file:
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if pipelines > 1 and not by_file:
        ds = ds.shard(pipelines, input_context.input_pipeline_id)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds


def _resize_mode(resize: str, target: int, height: int) -> str:
    """"pad" or "resize": how images of `height` are brought to `target` ("auto": pad when the
    target is at most 1/4 larger)."""
    mode = resize
    if mode == "auto":
        mode = "pad" if target >= height and target <= height * 1.25 else "resize"
    if mode not in RESIZE_MODES[1:]:
        raise ValueError(f"resize={resize!r} is not one of {', '.join(RESIZE_MODES)}")
    return mode


def _batch_parser(manifest: dict, data_dir, rows: int, image_size: Optional[int], resize: str,
                  with_geometry: bool):
    """A function: a batch of `rows` serialized records (-1: any number) -> the element dict."""
    import tensorflow as tf

    height, width = manifest["resolution"]
    char_table = make_lookup(manifest["charset"])
    writer_table = make_lookup(manifest["writers"])
    spec = schema.feature_spec(height, width)
    target = image_size or height
    mode = _resize_mode(resize, target, height)

    def parse(serialized):
        f = tf.io.parse_example(serialized, spec)
        img = tf.io.decode_raw(f[schema.IMAGE], tf.uint8)
        img = schema.to_float(tf.reshape(img, [rows, height, width, 1]))
        img = _to_size(img, height, width, target, mode)
        chars = char_table.lookup(f[schema.CHAR])
        writers = writer_table.lookup(f[schema.WRITER])
        with tf.control_dependencies([
                tf.debugging.assert_non_negative(
                    chars, message=f"a record's character is not in the charset of {data_dir}"),
                tf.debugging.assert_non_negative(
                    writers, message=f"a record's writer is not in the writers of {data_dir}")]):
            out = {"image": tf.identity(img), "char": chars, "writer": writers}
        if with_geometry:
            out["geometry"] = f[schema.GEOMETRY]
        return out

    return parse


def _to_size(img, height: int, width: int, target: int, mode: str):
    """Float images [B, height, width, 1] -> [B, target, target, 1]: padded with paper (-1)
    around the centre, or resized (area when shrinking, bilinear when enlarging)."""
    import tensorflow as tf

    if target == height and target == width:
        return img
    if mode == "pad" and target >= height and target >= width:
        top, left = (target - height) // 2, (target - width) // 2
        return tf.pad(img, [[0, 0], [top, target - height - top],
                            [left, target - width - left], [0, 0]], constant_values=-1.0)
    method = "area" if target < height else "bilinear"
    return tf.image.resize(img, [target, target], method=method)


def _group_by_writer(ds, group_size: int, per_replica: int, skip_batches: int):
    """Single parsed examples -> batches of `per_replica` examples in runs of `group_size` of
    one writer; the first `skip_batches` batches are skipped."""
    import tensorflow as tf

    ds = ds.group_by_window(
        key_func=lambda e: tf.cast(e["writer"], tf.int64),
        reduce_func=lambda key, window: window.batch(group_size, drop_remainder=True),
        window_size=group_size)
    ds = ds.batch(per_replica // group_size, drop_remainder=True)
    ds = ds.map(lambda e: {k: tf.reshape(v, tf.concat([[per_replica], tf.shape(v)[2:]], 0))
                           for k, v in e.items()})
    if skip_batches:
        ds = ds.skip(int(skip_batches))
    return ds


def load_glyphs(data_dir, split: str, image_size: int, limit: Optional[int] = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every glyph of `split` (or its first `limit`), in the dataset's deterministic order.

    Returns (images float32 [N, image_size, image_size, 1] in [-1, 1] (ink +1), char ids int32
    [N], writer ids int32 [N]); ids index the manifest's charset / writers. Images are brought to
    `image_size` exactly as training sees them (`make_dataset`'s "auto" pad/resize).
    """
    ds = make_dataset(data_dir, split, batch_size=512, image_size=image_size,
                      shuffle=False, repeat=False, drop_remainder=False)
    images, chars, writers = [], [], []
    n = 0
    for batch in ds.as_numpy_iterator():
        images.append(batch["image"])
        chars.append(batch["char"])
        writers.append(batch["writer"])
        n += len(batch["char"])
        if limit is not None and n >= limit:
            break
    if not images:
        raise DatasetError(f"split {split!r} of {data_dir} has no glyphs")
    stop = n if limit is None else min(n, limit)
    return (np.concatenate(images)[:stop].astype(np.float32),
            np.concatenate(chars)[:stop].astype(np.int32),
            np.concatenate(writers)[:stop].astype(np.int32))


def split_keys(data_dir, split: str) -> list[str]:
    """The record keys of `split` in `load_glyphs`' order: which record each row of its arrays
    is (its source's key, e.g. "ink:unipen_train_strokes.npz:1234")."""
    import tensorflow as tf

    files = shard_paths(data_dir, split, load_manifest(data_dir))
    spec = {schema.KEY: tf.io.FixedLenFeature([], tf.string)}
    ds = _serialized_records(files, None, shuffle=False, seed=0, cache=False, shuffle_buffer=0,
                             repeat=False).batch(512)
    ds = ds.map(lambda s: tf.io.parse_example(s, spec)[schema.KEY])
    return [k.decode("utf-8") for batch in ds.as_numpy_iterator() for k in batch]


def glyphs_in_charset(data_dir, split: str, charset: Sequence[str], image_size: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`load_glyphs` of a whole split with char ids re-mapped into `charset` (a list of labels,
    e.g. a model's): (images, char ids into `charset`, writer ids into the manifest's writers).

    ValueError naming the dataset directory and the labels when the split holds glyphs of
    labels that `charset` lacks (checked from the manifest, before anything is read).
    """
    manifest = load_manifest(data_dir)
    charset = list(charset)
    index = {label: i for i, label in enumerate(charset)}
    per_char = manifest["splits"].get(split, {}).get("per_char", {})
    missing = [label for label in manifest["charset"] if per_char.get(label, 0) and
               label not in index]
    if missing:
        raise ValueError(f"dataset {data_dir}: split {split!r} holds glyphs of labels {missing} "
                         f"that the charset lacks ({''.join(charset)!r})")
    images, chars, writers = load_glyphs(data_dir, split, image_size)
    remap = np.array([index.get(label, -1) for label in manifest["charset"]], np.int32)
    return images, remap[chars], writers


def pick_samples(chars: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k samples, as many distinct characters as possible first (seeded)."""
    chars = np.asarray(chars)
    order = rng.permutation(len(chars))
    first, rest, seen = [], [], set()
    for i in order:
        (rest if chars[i] in seen else first).append(i)
        seen.add(chars[i])
    return np.array((first + rest)[:k], np.int64)


def stack_sets(images: np.ndarray, chars: np.ndarray, sets, k: int):
    """Reference sets as arrays: images float32 [S, k, R, R, 1] (padding -1), char ids int32
    [S, k] and mask float32 [S, k] (1 = a reference) from S index arrays into `images` / `chars`;
    a set longer than k keeps its first k, a shorter one is padded and masked."""
    s = len(sets)
    x = np.full((s, k) + tuple(images.shape[1:]), -1.0, np.float32)
    c = np.zeros((s, k), np.int32)
    m = np.zeros((s, k), np.float32)
    for i, idx in enumerate(sets):
        n = min(k, len(idx))
        x[i, :n], c[i, :n], m[i, :n] = images[idx[:n]], chars[idx[:n]], 1.0
    return x, c, m
