# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# HiViT-S, supervised from scratch on ImageNet-1k: the HiViT-B recipe with drop path 0.3.
#
#   bash tools/dist_train.sh configs/hivit/hivit-small-p16_8xb128_in1k.py 8
_base_ = './hivit-base-p16_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3),
    neck=dict(in_channels=384),
    head=dict(in_channels=384))
