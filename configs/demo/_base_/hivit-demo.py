# The demo HiViT of every config in configs/demo/ (tests/data/ shrinks it further):
# embed 128 (stage widths 32 / 64 / 128), depths (1, 1, 4) (2 + 2 MLP stem blocks and 4
# attention blocks), 4 heads; 0.90M parameters with a 10-class head. A demo config lists
# this file after the real config it shrinks and takes the arch as
# ``backbone=dict(arch=dict(_delete_=True, **_base_.demo_arch))``.
demo_arch = dict(embed_dims=128, depths=(1, 1, 4), num_heads=4)
