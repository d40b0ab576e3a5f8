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
"""
import hashlib
import os
import os.path as osp
import re
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = [
    'CheckpointHashError', 'HASH_PATTERN', 'hash_in_name', 'sha256_of_file',
    'verify_hash_in_name', 'load_checkpoint_file', 'load_checkpoint_url',
    'publish_checkpoint'
]

#: ``<name>-<8 lowercase hex>.pth``: the hash suffix of a published checkpoint.
HASH_PATTERN = re.compile(r'-([0-9a-f]{8})\.pth$')

# Hashes already verified in this process, by (path, size, mtime in ns): a checkpoint
# read twice (e.g. by ``init_cfg`` and ``load_from``) is hashed once.
_VERIFIED: Dict[Tuple[str, int, int], str] = {}


class CheckpointHashError(ValueError):
    """The sha256 of a checkpoint file does not start with the hash in its name."""


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
        ValueError: The file is not a torch checkpoint (the message names the file).
    """
    filename = str(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} can not be found')
    verify_hash_in_name(filename)
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as e:  # unpickling a non-checkpoint can raise almost anything
        raise ValueError(f'checkpoint {filename} is not a readable torch checkpoint '
                         f'({type(e).__name__}: {e})') from e


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
