# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Exactness tests of GreenSwin (GreenMIM's Swin encoder on visible tokens), CPU."""
import numpy as np
import pytest
import torch

from conftest import SWIN_TINY, mmpretrain_swin, tiny_mae
from hivit_mm.models.green_swin import (GreenSwin, unit_token_coords, window_counts,
                                        window_index)
from hivit_mm.registry import MODELS

MODES = ('masking', 'grouping', 'auto')


def green(window: int, **kwargs) -> GreenSwin:
    """Tiny GreenSwin with random (non-trivial) weights, bias tables included."""
    model = GreenSwin(arch=SWIN_TINY, window_size=window, out_indices=(0, 1, 2, 3),
                      **kwargs)
    gen = torch.Generator().manual_seed(window)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (p.dim() == 1) * 0.5)
    model.eval()
    return model


def per_sample_ids(batch: int, num_units: int, keep: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack(
        [torch.randperm(num_units, generator=gen)[:keep] for _ in range(batch)])


def to_dense(tokens: torch.Tensor, ids_keep: torch.Tensor, grid_w: int, unit: int,
             size: int) -> torch.Tensor:
    """Scatter unit-major visible tokens ``(B, N, C)`` to ``(B, size*size, C)``."""
    coords = unit_token_coords(ids_keep, grid_w, unit)  # B, N, 2
    dense = tokens.new_full((tokens.shape[0], size * size, tokens.shape[-1]), np.nan)
    index = (coords[..., 0] * size + coords[..., 1])[..., None].expand_as(tokens)
    return dense.scatter(1, index, tokens)


# -- (a) nothing masked: equals mmpretrain's SwinTransformer -------------------
@pytest.mark.parametrize('img,window,modes', [(128, 4, MODES), (224, 7, ('auto', ))])
def test_unmasked_equals_mmpretrain_swin(img, window, modes):
    """Dense path and all-units-kept masked path, forced modes on the small input
    (``auto`` at 224 px groups stages 0-2 and masks stage 3)."""
    model = green(window)
    swin = mmpretrain_swin(window, out_indices=(0, 1, 2, 3))  # as green()
    assert set(swin.state_dict()) == set(model.state_dict())
    swin.load_state_dict(model.state_dict(), strict=True)
    model.load_state_dict(swin.state_dict(), strict=True)
    x = torch.randn(2, 3, img, img, generator=torch.Generator().manual_seed(1))
    grid = img // 32
    # every unit kept, in a different order per sample: exercises per-sample planning
    ids_keep = per_sample_ids(2, grid * grid, grid * grid, seed=2)
    with torch.no_grad():
        expected = swin(x)
        for mode in modes:
            model.attn_mode = mode
            dense = model(x, mask=None)
            visible = model.forward_visible(x, ids_keep)
            for i, (exp, out, vis) in enumerate(zip(expected, dense, visible)):
                torch.testing.assert_close(out, exp, rtol=1e-4, atol=1e-4)
                unit = 8 >> i
                vis = getattr(model, f'norm{i}')(vis)
                vis = to_dense(vis, ids_keep, grid, unit, grid * unit)
                torch.testing.assert_close(
                    vis, exp.flatten(2).transpose(1, 2), rtol=1e-4, atol=1e-4)


# -- (b) masked: equals a plain O(N^2) reference --------------------------------
def swin_labels(size: int, window: int, shift: int) -> np.ndarray:
    """Attention group of each coordinate on one axis, by Swin's definition.

    Cyclic shift by ``-shift`` then windows of ``window``; inside the last window the
    attention mask separates the slices ``[-window, -shift)`` and ``[-shift, end)``.
    """
    rolled = (np.arange(size) - shift) % size
    region = np.zeros(size, dtype=np.int64)
    if shift:
        region[rolled >= size - window] = 1
        region[rolled >= size - shift] = 2
    return rolled // window * 3 + region


def reference_block(block, tokens, coords, window, shift, size, table_window):
    """A Swin block on one sample's visible tokens: attention over all visible pairs,
    masked to "same shifted window", plus the relative position bias."""
    labels_1d = torch.from_numpy(swin_labels(size, window, shift))
    labels = labels_1d[coords[:, 0]] * 10**4 + labels_1d[coords[:, 1]]  # N
    w_msa = block.attn.w_msa
    heads, (num, dims) = w_msa.num_heads, tokens.shape
    q, k, v = w_msa.qkv(block.norm1(tokens)).view(num, 3, heads, -1).permute(1, 2, 0, 3)
    rel = coords[:, None] - coords[None]  # N, N, 2
    index = (rel[..., 0] + table_window - 1) * (2 * table_window - 1) + rel[..., 1]
    index = (index + table_window - 1).clamp(0, (2 * table_window - 1)**2 - 1)
    bias = w_msa.relative_position_bias_table[index].permute(2, 0, 1)  # heads, N, N
    attn = (q * w_msa.scale) @ k.transpose(1, 2) + bias
    attn = attn.masked_fill(labels[:, None] != labels[None], float('-inf')).softmax(-1)
    x = tokens + w_msa.proj((attn @ v).transpose(0, 1).reshape(num, dims))
    return block.ffn(block.norm2(x), identity=x)


def reference_stages(model, x, ids_keep):
    """Per stage, the visible tokens of every sample, ``(B, K*u*u, C)`` unit-major."""
    grid = x.shape[-1] // 32
    feats, (size, _) = model.patch_embed(x)  # B, size*size, C
    outs = []
    for s, stage in enumerate(model.stages):
        unit = 8 >> s
        window, shift = model.window_size, model.window_size // 2
        if size <= window:  # Swin's rule: no shift, the window shrinks to the stage
            window, shift = size, 0
        coords = unit_token_coords(ids_keep, grid, unit)  # B, N, 2
        flat = coords[..., 0] * size + coords[..., 1]  # B, N
        stage_out, next_feats = [], []
        for b in range(x.shape[0]):
            tokens = feats[b, flat[b]]
            for j, block in enumerate(stage.blocks):
                tokens = reference_block(block, tokens, coords[b], window,
                                         shift if j % 2 else 0, size, model.window_size)
            stage_out.append(tokens)
            if stage.downsample is not None:  # mmcv PatchMerging on the dense map
                dense = tokens.new_zeros(size * size, tokens.shape[-1])
                dense[flat[b]] = tokens
                merged, _ = stage.downsample(dense[None], (size, size))
                next_feats.append(merged[0])
        outs.append(torch.stack(stage_out))
        if next_feats:
            feats, size = torch.stack(next_feats), size // 2
    return outs


@pytest.mark.parametrize('img,window,keep,shared', [
    (128, 4, 4, False), (128, 4, 8, True), (128, 8, 4, False), (128, 8, 16, True),
    (224, 7, 12, False), (224, 14, 12, False)
])
def test_masked_equals_reference(img, window, keep, shared):
    """Random masks (per sample or shared), every mode. With ``window=8`` at 128 px and
    ``window=14`` at 224 px the last stage is below the window, so Swin's rule shrinks
    it (mmpretrain's Swin refuses these inputs); ``keep=16`` keeps every unit."""
    model = green(window)
    grid = img // 32
    ids_keep = per_sample_ids(1 if shared else 2, grid * grid, keep, seed=keep)
    ids_keep = ids_keep.expand(2, -1)
    x = torch.randn(2, 3, img, img, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference_stages(model, x, ids_keep)
        for mode in MODES:
            model.attn_mode = mode
            outs = model.forward_visible(x, ids_keep)
            for out, exp in zip(outs, expected):
                torch.testing.assert_close(out, exp, rtol=1e-4, atol=1e-4)


# -- (c) shared and per-sample masks through forward() -------------------------
@pytest.mark.parametrize('shared_mask', [True, False])
def test_forward_returns_what_mae_expects(shared_mask):
    model = green(4, shared_mask=shared_mask, mask_ratio=0.75)
    x = torch.randn(3, 3, 128, 128)
    torch.manual_seed(0)
    with torch.no_grad():
        latent, mask, ids_restore = model(x)
    assert latent.shape == (3, 4, 256) and mask.shape == ids_restore.shape == (3, 16)
    assert mask.dtype == torch.float32 and (mask.sum(1) == 12).all()
    ids_keep = ids_restore.argsort(1)[:, :4]  # kept units, in latent order
    assert (mask.gather(1, ids_keep) == 0).all()
    assert (ids_keep == ids_keep[:1]).all() == shared_mask
    with torch.no_grad():
        again = model.norm3(model.forward_visible(x, ids_keep)[-1])
    torch.testing.assert_close(latent, again)


def test_per_sample_batch_equals_single_samples():
    """Windows of different samples share groups but never attend to each other."""
    model = green(4, attn_mode='grouping')
    ids_keep = per_sample_ids(3, 16, 6, seed=4)
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        batch = model.forward_visible(x, ids_keep)
        for b in range(3):
            single = model.forward_visible(x[b:b + 1], ids_keep[b:b + 1])
            for out, one in zip(batch, single):
                torch.testing.assert_close(out[b:b + 1], one, rtol=1e-4, atol=1e-4)


# -- (d) gradients --------------------------------------------------------------
def test_masked_backward_reaches_every_used_parameter():
    """Unused in the masked forward, legitimately: the output norms of stages 0-2
    (only ``norm3`` makes the latent). Both attention modes run (auto at 128 px)."""
    model = green(4)
    model.train()
    latent, _, _ = model(torch.randn(2, 3, 128, 128))
    (latent * torch.randn_like(latent)).sum().backward()
    unused = {n for n, p in model.named_parameters() if p.grad is None}
    assert unused == {f'norm{i}.{w}' for i in range(3) for w in ('weight', 'bias')}
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_grouped_backward_matches_masking_mode():
    """The two modes give the same gradients (padding slots carry none); float64, so
    that rounding does not hide a difference."""
    grads = []
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    ids_keep = per_sample_ids(2, 4, 3, seed=5)
    for mode in ('masking', 'grouping'):
        model = green(4, attn_mode=mode).double()
        model.forward_visible(x, ids_keep)[-1].pow(2).sum().backward()
        grads.append(
            {n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(
            grads[1][name], grad, rtol=1e-9, atol=1e-9 * grad.abs().max())


# -- helpers and contracts -----------------------------------------------------
@pytest.mark.parametrize('size,unit,window,shift', [(32, 8, 4, 2), (28, 4, 7, 3),
                                                    (16, 4, 5, 2), (8, 2, 8, 0)])
def test_host_window_counts_match_device_windows(size, unit, window, shift):
    grid = size // unit
    ids_keep = per_sample_ids(3, grid * grid, grid * grid // 2, seed=size)
    coords = unit_token_coords(ids_keep, grid, unit)
    win = window_index(coords, size, window, shift)
    counts = window_counts(ids_keep.numpy(), (grid, grid), unit, window, shift)
    for b in range(3):
        expected = np.bincount(win[b].numpy(), minlength=counts[b].size)
        np.testing.assert_array_equal(counts[b].ravel(), expected)


def test_builds_from_registry_with_official_defaults():
    model = MODELS.build(dict(type='hivit_mm.GreenSwin', arch='base'))
    assert (model.embed_dims, model.depths, model.num_heads) == (128, [2, 2, 18, 2],
                                                                 [4, 8, 16, 32])
    assert model.window_size == 7 and model.unit_size == 32 and model.mask_ratio == 0.75
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 1 + 2 * 24 + 3 + 1 and all(m.eps == 1e-6 for m in norms)
    large = GreenSwin(arch='large', window_size=14)
    assert (large.embed_dims, large.num_heads) == (192, [6, 12, 24, 48])


@pytest.mark.parametrize('kwargs,match', [(dict(mask_ratio=0.), 'mask_ratio'),
                                          (dict(mask_ratio=1.), 'mask_ratio'),
                                          (dict(attn_mode='dense'), 'attn_mode'),
                                          (dict(arch='huge'), 'huge'),
                                          (dict(out_indices=(4, )), 'out_indices')])
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GreenSwin(**{'arch': SWIN_TINY, **kwargs})


def test_rejects_bad_inputs():
    model = green(4)
    with pytest.raises(ValueError, match='multiple'):
        model(torch.randn(1, 3, 96, 112))
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match='repeated'):
        model.forward_visible(x, torch.tensor([[1, 1]]))
    with pytest.raises(ValueError, match=r'\[0, 4\)'):
        model.forward_visible(x, torch.tensor([[0, 4]]))
    with pytest.raises(ValueError, match='norm3'):
        GreenSwin(arch=SWIN_TINY, window_size=4, out_indices=(2, ))(x)


def test_mmpretrain_mae_trains_with_greenswin():
    """The pre-training wiring: mmpretrain MAE + cls-free decoder + MAE head."""
    model = tiny_mae(dict(type='hivit_mm.GreenSwin', arch=SWIN_TINY, window_size=4),
                     num_patches=16, patch_size=32, embed_dim=256)
    loss = model.loss(torch.randn(2, 3, 128, 128), [])['loss']
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.patch_embed.projection.weight.grad is not None
