# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
# HiViT-T, supervised from scratch on ImageNet-1k: the HiViT-B recipe with drop path 0.05.
#
#   bash tools/dist_train.sh configs/hivit/hivit-tiny-p16_8xb128_in1k.py 8
_base_ = './hivit-base-p16_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.05),
    neck=dict(in_channels=384),
    head=dict(in_channels=384))
