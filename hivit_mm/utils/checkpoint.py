# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""The one function that reads a checkpoint file, with the OpenMMLab hash check.

Published checkpoints carry the first 8 hex digits of their sha256 in the file name,
``<name>-<8 hex>.pth`` (what ``tools/model_converters/publish_model.py`` writes, and
the convention of the OpenMMLab model zoos). :func:`load_checkpoint_file` verifies that
prefix whenever a file name carries one, so a truncated or corrupted download stops
with an error naming the file instead of loading garbage (or failing deep inside
unpickling). Every loading path of hivit_mm goes through it: ``init_cfg=Pretrained``,
``load_from`` and ``--resume`` (mmengine's local-file and http(s) loaders are replaced
by :func:`hivit_mm.utils.compat.apply_compat_fixes`), the converters in
``tools/model_converters/`` and :func:`hivit_mm.apis.init_model`.

Only load checkpoints you trust: they are unpickled (``weights_only=False``), because
mmengine's checkpoints pickle its ``HistoryBuffer`` and NumPy scalars.

The other side of a checkpoint's life is here too:

* :func:`save_checkpoint_atomic` and :func:`replace_atomic` write to a temporary file
  in the target's directory, flush and ``fsync`` it, then ``os.replace`` it onto the
  target: a kill or a full disk at any moment leaves either the old file or the new
  one, never a partial one (the converters, and every checkpoint of
  :class:`hivit_mm.engine.ReliableRunner`);
* :func:`is_readable_checkpoint` checks a file without unpickling it (zip directory and
  CRC of every record), for choosing what to resume from;
* :func:`load_state_dict_checked` loads a state dict and raises
  :class:`CheckpointMismatchError` with the missing, unexpected and mis-shaped keys,
  unless they match an explicit ``ignore_keys`` pattern;
* :func:`check_output_path` refuses an output path that is the input file;
* :func:`convert_checkpoint_file` is the file side of every converter in
  ``tools/model_converters/``: read, convert, write with provenance.
"""
import hashlib
import os
import os.path as osp
import re
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = [
    'CheckpointHashError', 'HASH_PATTERN', 'hash_in_name', 'sha256_of_file',
    'verify_hash_in_name', 'load_checkpoint_file', 'load_checkpoint_url',
    'publish_checkpoint', 'CheckpointLoadError', 'CheckpointMismatchError',
    'CheckpointSaveError', 'save_checkpoint_atomic', 'replace_atomic',
    'write_text_atomic', 'TEMP_FILE_PATTERN', 'remove_stale_temp_files',
    'is_readable_checkpoint', 'load_state_dict_checked', 'check_output_path'
]

#: ``<name>-<8 lowercase hex>.pth``: the hash suffix of a published checkpoint.
HASH_PATTERN = re.compile(r'-([0-9a-f]{8})\.pth$')

# Hashes already verified in this process, by (path, size, mtime in ns): a checkpoint
# read twice (e.g. by ``init_cfg`` and ``load_from``) is hashed once.
_VERIFIED: Dict[Tuple[str, int, int], str] = {}


# Longest key list printed in full; longer lists are cut with a count.
_MAX_LISTED = 50


class CheckpointHashError(ValueError):
    """The sha256 of a checkpoint file does not start with the hash in its name."""


class CheckpointLoadError(ValueError):
    """A checkpoint file is empty, truncated or not a checkpoint; names the file."""


class CheckpointMismatchError(RuntimeError):
    """A state dict does not fit a model; the message lists the keys."""


class CheckpointSaveError(OSError):
    """Writing a file atomically failed (a full disk, say); the message names the file
    and the free space of its file system. The previous file is unchanged."""


#: The temporary files of :func:`replace_atomic`: ``.<name>.<8 random>.tmp``.
TEMP_FILE_PATTERN = re.compile(r'^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$')


def hash_in_name(filename: str) -> Optional[str]:
    """The 8-hex hash a published checkpoint's name carries, or None.

    Args:
        filename: A path or URL, e.g. ``'.../hivit-tiny-p16_in1k-1a2b3c4d.pth'``.

    Returns:
        str | None: ``'1a2b3c4d'`` for that example; None for names without the suffix.
    """
    match = HASH_PATTERN.search(osp.basename(str(filename)))
    return match.group(1) if match else None


def sha256_of_file(filename: str, chunk_bytes: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks of ``chunk_bytes``."""
    digest = hashlib.sha256()
    with open(filename, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b''):
            digest.update(chunk)
    return digest.hexdigest()


def verify_hash_in_name(filename: str) -> Optional[str]:
    """Check that the file's sha256 starts with the hash its name carries.

    Args:
        filename: A local file.

    Returns:
        str | None: The verified 8-hex prefix, or None if the name carries no hash.

    Raises:
        CheckpointHashError: The content does not match the name (a corrupted or
            incomplete download, or a file renamed after publishing).
    """
    expected = hash_in_name(filename)
    if expected is None:
        return None
    stat = os.stat(filename)
    key = (osp.realpath(filename), stat.st_size, stat.st_mtime_ns)
    actual = _VERIFIED.get(key) or sha256_of_file(filename)
    if not actual.startswith(expected):
        raise CheckpointHashError(
            f'checkpoint {filename}: its name carries the hash {expected} (the OpenMMLab '
            f'<name>-<8 hex of sha256>.pth convention) but its sha256 is '
            f'{actual[:8]}... ({stat.st_size} bytes): the file is corrupted or '
            'incomplete. Download it again. (A file that was not published this way '
            'must not end in -<8 hex>.pth; rename it.)')
    _VERIFIED[key] = actual
    return expected


def load_checkpoint_file(filename: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint file, verifying the hash its name carries, if any.

    Args:
        filename: A local ``.pth`` file.
        map_location: As for ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The unpickled object (usually a dict with ``state_dict`` and ``meta``).

    Raises:
        FileNotFoundError: No such file.
        CheckpointHashError: See :func:`verify_hash_in_name`.
        CheckpointLoadError: The file is empty, truncated or not a torch checkpoint
            (a text file, say); the message names the file and torch's reason.
    """
    filename = str(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found')
    if osp.getsize(filename) == 0:
        raise CheckpointLoadError(f'checkpoint {filename} is empty (0 bytes)')
    verify_hash_in_name(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as e:  # unpickling a non-checkpoint can raise almost anything
        raise CheckpointLoadError(
            f'checkpoint {filename} is not a readable torch checkpoint '
            f'({osp.getsize(filename)} bytes; truncated, corrupt or not written by '
            f'torch.save) ({type(e).__name__}: {e})') from e


def load_checkpoint_url(url: str, map_location: Any = 'cpu',
                        model_dir: Optional[str] = None) -> Any:
    """Download a checkpoint once into torch's hub cache, then load it as a file.

    The download is checked against the hash in the URL's file name while it is
    written (an interrupted or corrupted download is not kept), and the cached file
    again on every load (:func:`load_checkpoint_file`).

    Args:
        url: An ``http(s)://`` URL.
        map_location: As for ``torch.load``.
        model_dir: Cache folder. Defaults to ``<torch hub dir>/checkpoints``, where
            mmengine's own http loader puts its downloads.

    Returns:
        The unpickled object.
    """
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    cached = osp.join(model_dir, osp.basename(url.split('?')[0]))
    if not osp.isfile(cached):
        torch.hub.download_url_to_file(url, cached, hash_prefix=hash_in_name(url))
    return load_checkpoint_file(cached, map_location)


def publish_checkpoint(src: str, dst: str) -> str:
    """Write the inference part of a checkpoint under a name that carries its hash.

    Keeps ``state_dict`` and ``meta`` (class names, config, versions); drops optimizer,
    scheduler and message-hub states. The file is written next to its final name and
    renamed into place, so a crash never leaves a half-written file under a hashed name.

    Args:
        src: A training checkpoint (``{'state_dict': ..., 'meta': ...}``, as mmengine
            saves), or a bare state dict.
        dst: The output path; ``.pth`` is optional. The file written is
            ``<dst without .pth>-<first 8 hex of its sha256>.pth``.

    Returns:
        str: The path written.

    Raises:
        ValueError: ``src`` holds no tensors, or a non-finite one (a diverged run must
            not be published).
    """
    checkpoint = load_checkpoint_file(src)
    is_full = isinstance(checkpoint, dict) and 'state_dict' in checkpoint
    state_dict = checkpoint['state_dict'] if is_full else checkpoint
    if not isinstance(state_dict, dict) or not any(
            torch.is_tensor(v) for v in state_dict.values()):
        raise ValueError(f'checkpoint {src} holds no state dict of tensors')
    bad = [k for k, v in state_dict.items() if torch.is_tensor(v)
           and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f'checkpoint {src} has non-finite values in {len(bad)} tensors '
                         f'(first: {bad[:3]}); refusing to publish it')
    out = dict(state_dict=state_dict, meta=checkpoint.get('meta', {}) if is_full else {})
    stem = dst[:-len('.pth')] if dst.endswith('.pth') else dst
    folder = osp.dirname(osp.abspath(stem))
    os.makedirs(folder, exist_ok=True)
    tmp = f'{stem}.publishing-{os.getpid()}'
    try:
        torch.save(out, tmp)
        final = f'{stem}-{sha256_of_file(tmp)[:8]}.pth'
        os.replace(tmp, final)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return final


def _fsync_dir(dirname: str) -> None:
    """Flush a directory entry (the rename) to disk, where the OS allows it."""
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _size(num_bytes: float) -> str:
    """``num_bytes`` in bytes, KiB, MiB or GiB."""
    for unit in ('bytes', 'KiB', 'MiB'):
        if num_bytes < 1024:
            return (f'{num_bytes:.0f} bytes' if unit == 'bytes' else
                    f'{num_bytes:.1f} {unit}')
        num_bytes /= 1024
    return f'{num_bytes:.1f} GiB'


def _free_space(dirname: str) -> str:
    try:
        fs = os.statvfs(dirname)
    except OSError:
        return 'free space unknown'
    free, total = fs.f_bavail * fs.f_frsize, fs.f_blocks * fs.f_frsize
    return f'{_size(free)} free of {_size(total)} on the file system of {dirname}'


def replace_atomic(filename: str, write: Callable[[str], None]) -> None:
    """Create ``filename`` through a temporary file in its directory.

    ``write(tmp_path)`` writes the content; the temporary file
    (``.<name>.<8 random>.tmp``, :data:`TEMP_FILE_PATTERN`) is then flushed to disk and
    renamed onto ``filename`` (atomic on POSIX file systems). On any error the
    temporary file is removed and ``filename`` is left as it was. (A process killed
    while writing leaves its temporary file: :func:`remove_stale_temp_files`.)

    Args:
        filename (str): Target path.
        write (Callable[[str], None]): Writes the whole content to the given path.

    Raises:
        CheckpointSaveError: If writing, flushing or renaming failed with an
            ``OSError`` (e.g. ``ENOSPC``, a full disk) or a ``RuntimeError`` (torch's
            zip writer reports a full disk so); the message names ``filename``, the
            original error and the free space left. Other errors propagate as they are.
    """
    dirname = osp.dirname(osp.abspath(filename))
    os.makedirs(dirname, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(filename)}.', suffix='.tmp',
                               dir=dirname)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, 'rb+') as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filename)
    except BaseException as exc:
        space = _free_space(dirname)  # before the partial file is removed
        if osp.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, (OSError, RuntimeError)):
            errno = getattr(exc, 'errno', None)
            raise CheckpointSaveError(
                *([errno] if errno else []),
                f'could not write {filename} ({type(exc).__name__}: {exc}); when it '
                f'failed: {space}. Nothing was replaced: the previous '
                f'{osp.basename(filename)} (if any) and the other files are as they '
                'were, and the partial file was removed') from exc
        raise
    _fsync_dir(dirname)


def remove_stale_temp_files(dirname: str) -> List[str]:
    """Delete the temporary files that killed writers left in ``dirname``.

    Args:
        dirname (str): A folder written by :func:`replace_atomic` (a work directory).

    Returns:
        list[str]: The paths removed (files matching :data:`TEMP_FILE_PATTERN`).
    """
    if not osp.isdir(dirname):
        return []
    removed = []
    for name in sorted(os.listdir(dirname)):
        path = osp.join(dirname, name)
        if TEMP_FILE_PATTERN.match(name) and osp.isfile(path):
            os.remove(path)
            removed.append(path)
    return removed


def save_checkpoint_atomic(obj: Any, filename: str) -> None:
    """``torch.save(obj, filename)`` that never leaves a partial file.

    Args:
        obj: What to save.
        filename (str): Target path; an existing file is replaced only once the new
            one is completely on disk.
    """
    replace_atomic(filename, lambda tmp: torch.save(obj, tmp))


def write_text_atomic(filename: str, text: str) -> None:
    """Write a small text file (such as ``last_checkpoint``) atomically."""

    def write(tmp: str) -> None:
        with open(tmp, 'w') as f:
            f.write(text)

    replace_atomic(filename, write)


def check_output_path(src: str, dst: str) -> None:
    """Refuse an output path that is the input file (a converter would destroy it).

    Args:
        src (str): Input file.
        dst (str): Output file (may not exist yet).

    Raises:
        ValueError: If ``dst`` is ``src`` (same path after resolving links, or the
            same file through a hard link).
    """
    same = osp.realpath(src) == osp.realpath(dst)
    if not same and osp.exists(src) and osp.exists(dst):
        same = osp.samefile(src, dst)
    if same:
        raise ValueError(f'the output {dst} is the input checkpoint {src}; writing it '
                         'would destroy the input. Choose another output path.')


def convert_checkpoint_file(src: str, dst: str,
                            convert: Callable[[Any], Mapping[str, torch.Tensor]],
                            **meta: Any) -> Mapping[str, torch.Tensor]:
    """Convert a checkpoint file, as every script of ``tools/model_converters/`` does.

    Refuses ``dst == src`` (:func:`check_output_path`), reads ``src`` with the hash
    check (:func:`load_checkpoint_file`), converts it, and writes
    ``{'state_dict': ..., 'meta': ...}`` atomically (:func:`save_checkpoint_atomic`).
    ``meta`` records the source path, the given ``meta`` and the hivit_mm version.

    Args:
        src (str): Input checkpoint.
        dst (str): Output checkpoint.
        convert (Callable): The loaded checkpoint to the converted state dict (e.g.
            :func:`~hivit_mm.models.convert_hivit.convert_official_hivit` with its
            depths bound).
        **meta: What else the output's ``meta`` records (the source layout, options).

    Returns:
        Mapping[str, torch.Tensor]: The converted state dict.
    """
    from hivit_mm.version import __version__
    check_output_path(src, dst)
    state_dict = convert(load_checkpoint_file(src))
    meta = dict(source=osp.abspath(src), **meta, hivit_mm_version=__version__)
    save_checkpoint_atomic(dict(state_dict=state_dict, meta=meta), dst)
    return state_dict


def is_readable_checkpoint(filename: str) -> Optional[str]:
    """Check a checkpoint file without unpickling it.

    A file written by ``torch.save`` is a zip archive: an empty or truncated file has
    no central directory, and a corrupted one fails the CRC of a record. Files in
    torch's legacy format are loaded instead.

    Args:
        filename (str): Path of the file.

    Returns:
        str | None: None if the file looks complete, else the reason it does not.
    """
    if not osp.isfile(filename):
        return 'no such file'
    if osp.getsize(filename) == 0:
        return 'empty (0 bytes)'
    if zipfile.is_zipfile(filename):
        try:
            with zipfile.ZipFile(filename) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            return f'corrupt ({exc})'
        return None if bad is None else f'corrupt record {bad}'
    try:
        load_checkpoint_file(filename, map_location='cpu')
    except (ValueError, FileNotFoundError) as exc:  # unreadable, or a bad hash
        return str(exc)
    return None


def _listed(keys: Sequence[str]) -> str:
    keys = list(keys)
    if len(keys) <= _MAX_LISTED:
        return str(keys)
    return f'{keys[:_MAX_LISTED]} ... and {len(keys) - _MAX_LISTED} more'


def load_state_dict_checked(module: nn.Module,
                            state_dict: Mapping[str, torch.Tensor],
                            source: str,
                            ignore_keys: Sequence[str] = ()) -> Dict[str, List[str]]:
    """Load ``state_dict`` into ``module``, refusing anything that does not fit.

    Loading runs through every submodule's ``_load_from_state_dict``, so models that
    adapt saved tensors (HiViT resizes position tables of another grid) are honoured.
    Keys matching a pattern of ``ignore_keys`` are dropped from ``state_dict`` and may
    be missing from it: that is how a partial load is asked for explicitly (e.g.
    ``[r'^head\\.']`` for another number of classes).

    Args:
        module (nn.Module): The model (unwrapped).
        state_dict (Mapping[str, torch.Tensor]): Keys as in ``module.state_dict()``.
        source (str): Where the weights come from, for the message (a file name).
        ignore_keys (Sequence[str]): Regular expressions (``re.search``) of keys
            that may be absent, surplus or of another shape. Defaults to none.

    Returns:
        dict[str, list[str]]: ``ignored`` checkpoint keys and ``missing`` model keys
        that the patterns allowed.

    Raises:
        CheckpointMismatchError: Naming ``source``, the missing keys, the unexpected
            keys and the shape mismatches, if any is not allowed. Nothing useful is
            left in ``module`` then (it may be partly loaded).
    """
    patterns = [re.compile(p) for p in ignore_keys]

    def allowed(key: str) -> bool:
        return any(p.search(key) for p in patterns)

    metadata = getattr(state_dict, '_metadata', None)
    state = OrderedDict((k, v) for k, v in state_dict.items() if not allowed(k))
    ignored = [k for k in state_dict if allowed(k)]
    if metadata is not None:
        state._metadata = metadata  # per-module versions for _load_from_state_dict

    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []

    def load(mod: nn.Module, prefix: str = '') -> None:
        local_metadata = {} if metadata is None else metadata.get(prefix[:-1], {})
        mod._load_from_state_dict(state, prefix, local_metadata, True, missing,
                                  unexpected, errors)
        for name, child in mod._modules.items():
            if child is not None:
                load(child, prefix + name + '.')

    load(module)
    missing_allowed = [k for k in missing if allowed(k)]
    missing = [k for k in missing if not allowed(k)]
    if missing or unexpected or errors:
        raise CheckpointMismatchError(
            f'the weights in {source} do not match the model '
            f'({type(module).__name__}); nothing was trained on them.\n'
            f'missing keys ({len(missing)}): {_listed(missing)}\n'
            f'unexpected keys ({len(unexpected)}): {_listed(unexpected)}\n'
            f'errors ({len(errors)}): {_listed(errors)}\n'
            'To load part of a checkpoint on purpose, list regular expressions of '
            'the keys to leave out in the config, e.g. '
            'reliability=dict(load_from_ignore_keys=[r"^head\\."]).')
    return dict(ignored=ignored, missing=missing_allowed)
