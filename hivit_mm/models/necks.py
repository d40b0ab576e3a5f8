# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""Necks that adapt HiViT outputs to upstream heads."""
from typing import Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from hivit_mm.registry import MODELS

__all__ = ['MeanPoolLayerNorm', 'MeanPoolBatchNorm']


@MODELS.register_module()
class MeanPoolLayerNorm(BaseModule):
    """Global mean-pool, then LayerNorm: the official HiViT classifier's ``fc_norm``.

    Pair it with mmpretrain's ``LinearClsHead`` for mean-pool -> LN -> linear.
    (mmpretrain's ``GlobalAveragePooling`` has no norm, and a per-output norm in the
    backbone would normalise tokens before pooling, which is a different function.)

    Args:
        in_channels (int): Channels of the (last) input map.
        eps (float): LayerNorm eps. Defaults to 1e-6 (official).
    """

    def __init__(self, in_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_channels, eps=eps)

    def forward(self, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor]:
        """
        Args:
            inputs (tuple[torch.Tensor]): Backbone maps; the last, ``(B, C, H, W)``, is
                used.

        Returns:
            tuple[torch.Tensor]: ``((B, C), )``.
        """
        return (self.norm(inputs[-1].mean(dim=(2, 3))), )


@MODELS.register_module()
class MeanPoolBatchNorm(BaseModule):
    """Global mean-pool, then BatchNorm without affine parameters: MAE's linear-probe
    feature normalisation for a backbone without a class token.

    MAE's linear probe (facebookresearch/mae, ``main_linprobe.py``) puts
    ``BatchNorm1d(affine=False, eps=1e-6)`` between the frozen features and the linear
    classifier; mmpretrain's ``ClsBatchNormNeck`` does the same on ViT's class token.
    HiViT has no class token, so its features are the mean of the main-stage tokens.
    The norm has no parameters: a classifier behind it stays a linear function of the
    frozen features (the running statistics fold into it at test time).

    Args:
        in_channels (int): Channels of the (last) input map.
        eps (float): BatchNorm eps. Defaults to 1e-6 (MAE).
    """

    def __init__(self, in_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_channels, affine=False, eps=eps)

    def forward(self, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor]:
        """
        Args:
            inputs (tuple[torch.Tensor]): Backbone maps; the last one,
                ``(B, C, H, W)``, is used.

        Returns:
            tuple[torch.Tensor]: ``((B, C), )``.
        """
        return (self.norm(inputs[-1].mean(dim=(2, 3))), )
