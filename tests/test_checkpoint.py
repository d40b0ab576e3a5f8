# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Published checkpoints: hash in the name, verified by every loading path."""
import hashlib
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

from conftest import HIVIT_TINY
from hivit_mm.models import HiViT
from hivit_mm.utils.checkpoint import (CheckpointHashError, hash_in_name,
                                       load_checkpoint_file, load_checkpoint_url,
                                       publish_checkpoint)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny_hivit(**kwargs) -> HiViT:
    torch.manual_seed(0)
    model = HiViT(arch=HIVIT_TINY, img_size=32, **kwargs)
    model.init_weights()
    return model


@pytest.fixture
def training_checkpoint(tmp_path):
    """A checkpoint as mmengine's runner saves it: weights plus training state."""
    model = tiny_hivit()
    own = model.state_dict()
    state = OrderedDict((f'backbone.{k}', v) for k, v in own.items())
    state._metadata = OrderedDict(  # as the model's state dict, under 'backbone'
        ('backbone' + (f'.{k}' if k else ''), v) for k, v in own._metadata.items())
    path = tmp_path / 'epoch_3.pth'
    meta = dict(epoch=3, dataset_meta=dict(classes=['a']))
    torch.save(dict(state_dict=state, meta=meta,
                    optimizer=dict(state={}, param_groups=[dict(lr=0.1)]),
                    message_hub=dict(log_scalars={})), path)
    return str(path), model


def flip_byte(path: str, offset: int = -100) -> None:
    """Corrupt one byte near the end (inside the stored tensors)."""
    data = bytearray(open(path, 'rb').read())
    data[offset] ^= 0xFF
    open(path, 'wb').write(bytes(data))


def test_hash_in_name_follows_the_openmmlab_convention():
    assert hash_in_name('a/hivit-tiny_in1k-1a2b3c4d.pth') == '1a2b3c4d'
    assert hash_in_name('https://x.org/w/mae-0123abcd.pth') == '0123abcd'
    for name in ('epoch_12.pth', 'a-1a2b3c4.pth', 'a-1A2B3C4D.pth', 'a_1a2b3c4d.pth',
                 'a-1a2b3c4d.pt'):
        assert hash_in_name(name) is None, name


def test_publish_keeps_weights_and_meta_and_names_the_file_by_its_hash(
        training_checkpoint, tmp_path):
    src, model = training_checkpoint
    out = publish_checkpoint(src, str(tmp_path / 'pub' / 'hivit-tiny.pth'))
    sha = hashlib.sha256(open(out, 'rb').read()).hexdigest()
    assert osp.basename(out) == f'hivit-tiny-{sha[:8]}.pth'
    saved = load_checkpoint_file(out)
    assert set(saved) == {'state_dict', 'meta'}
    assert saved['meta']['dataset_meta'] == dict(classes=['a'])
    for k, v in model.state_dict().items():
        assert torch.equal(saved['state_dict'][f'backbone.{k}'], v)
    # the temporary file is gone; ".pth" in OUT is optional
    assert sorted(p.name for p in (tmp_path / 'pub').iterdir()) == [osp.basename(out)]
    assert osp.basename(publish_checkpoint(src, str(tmp_path / 'pub' / 'hivit-tiny'))
                        ) == osp.basename(out)


def test_publish_refuses_non_finite_weights_and_empty_files(training_checkpoint,
                                                            tmp_path):
    src, _ = training_checkpoint
    ckpt = torch.load(src, weights_only=False)
    next(iter(ckpt['state_dict'].values())).view(-1)[0] = float('nan')
    torch.save(ckpt, tmp_path / 'nan.pth')
    with pytest.raises(ValueError, match='non-finite'):
        publish_checkpoint(str(tmp_path / 'nan.pth'), str(tmp_path / 'x'))
    torch.save(dict(state_dict={}), tmp_path / 'empty.pth')
    with pytest.raises(ValueError, match='no state dict'):
        publish_checkpoint(str(tmp_path / 'empty.pth'), str(tmp_path / 'x'))
    assert not list(tmp_path.glob('x*'))


def test_every_loading_path_verifies_the_hash_and_refuses_a_flipped_byte(
        training_checkpoint, tmp_path):
    src, model = training_checkpoint
    out = publish_checkpoint(src, str(tmp_path / 'hivit-tiny'))
    init_cfg = dict(type='Pretrained', checkpoint=out, prefix='backbone.')

    # intact: init_cfg, mmengine's loader (load_from, --resume) and the plain function
    loaded = tiny_hivit(init_cfg=init_cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert set(_load_checkpoint(out, map_location='cpu')) == {'state_dict', 'meta'}

    flip_byte(out)
    with pytest.raises(CheckpointHashError, match=osp.basename(out)):
        load_checkpoint_file(out)
    with pytest.raises(CheckpointHashError, match='corrupted'):
        tiny_hivit(init_cfg=init_cfg)  # init_cfg=Pretrained
    with pytest.raises(CheckpointHashError):
        load_checkpoint(torch.nn.Linear(1, 1), out)  # the runner's load_from / resume


def test_converters_verify_the_hash(training_checkpoint, tmp_path):
    import runpy
    src, _ = training_checkpoint
    out = publish_checkpoint(src, str(tmp_path / 'official'))
    flip_byte(out)
    main = runpy.run_path(
        osp.join(REPO, 'tools/model_converters/hivit_official_to_hivit_mm.py'))['main']
    with pytest.raises(CheckpointHashError):
        main([out, str(tmp_path / 'converted.pth'), '--depths', '1', '1', '2'])
    assert not (tmp_path / 'converted.pth').exists()


def test_a_name_without_hash_loads_unchecked_and_garbage_is_named(tmp_path):
    torch.save(dict(state_dict=dict(w=torch.ones(2))), tmp_path / 'plain.pth')
    plain = load_checkpoint_file(str(tmp_path / 'plain.pth'))
    assert torch.equal(plain['state_dict']['w'], torch.ones(2))
    (tmp_path / 'notes.pth').write_text('not a checkpoint')
    with pytest.raises(ValueError, match='notes.pth is not a readable torch checkpoint'):
        load_checkpoint_file(str(tmp_path / 'notes.pth'))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp_path / 'missing.pth'))


def test_downloads_are_checked_and_a_corrupted_one_is_not_kept(training_checkpoint,
                                                               tmp_path):
    src, _ = training_checkpoint
    out = publish_checkpoint(src, str(tmp_path / 'served' / 'hivit-tiny'))
    cache = tmp_path / 'cache'
    ckpt = load_checkpoint_url(f'file://{out}', model_dir=str(cache))
    assert set(ckpt) == {'state_dict', 'meta'}
    assert (cache / osp.basename(out)).is_file()

    (cache / osp.basename(out)).unlink()
    flip_byte(out)
    with pytest.raises(RuntimeError, match='hash'):
        load_checkpoint_url(f'file://{out}', model_dir=str(cache))
    assert not (cache / osp.basename(out)).exists()
