# Copyright (c) hivit_mm contributors. Licensed under the Apache License 2.0.
"""bf16 training without a loss scaler (``hivit_mm.BF16OptimWrapper``)."""
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper, build_optim_wrapper

from hivit_mm.engine import amp


def test_bf16_optim_wrapper_autocasts_and_keeps_fp32_state():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    before = model.weight.detach().clone()
    wrapper = build_optim_wrapper(model, dict(
        type='hivit_mm.BF16OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    assert type(wrapper) is amp.BF16OptimWrapper
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16  # the forward ran under bf16 autocast
    wrapper.update_params(out.float().square().sum())
    assert model.weight.dtype == torch.float32 and model.weight.grad is None  # zeroed
    assert not torch.equal(model.weight, before)  # one unscaled SGD step was taken
    # the state dict is OptimWrapper's: runs resume across fp32 and bf16
    plain = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    plain.load_state_dict(wrapper.state_dict())
    assert set(wrapper.state_dict()) == set(plain.state_dict())
    with plain.optim_context(model):
        assert model(torch.randn(2, 4)).dtype == torch.float32


def test_cpu_supports_bf16(monkeypatch):
    for caps, expected in [({'avx512_bf16': True}, True), ({'amx_bf16': True}, True),
                           ({'bf16': True}, True), ({'avx512_f': True}, False)]:
        monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda caps=caps: caps)
        assert amp.cpu_supports_bf16() is expected
