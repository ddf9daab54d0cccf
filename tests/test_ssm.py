"""Mamba-style SSM family: parallel scan equals the recurrence, step equals forward, it learns, round trip."""

from __future__ import annotations

import pytest
import torch

from ntg.models import create_generator
from ntg.models.scan import pscan, sequential_scan
from ntg.models.ssm import MambaBackbone
from tests import ar_flows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flows():
    return ar_flows.two_class_flows(1200, seed=0)


@pytest.fixture(scope="module")
def trained(flows):
    gen = create_generator("ssm", d_model=64, n_layers=2, d_state=8)
    return ar_flows.train_small(gen, flows, epochs=4)


def test_default_size_is_in_budget(flows):
    gen = create_generator("ssm")
    gen.prepare(flows)
    assert 1_000_000 <= gen.num_parameters() <= 2_000_000


@pytest.mark.parametrize("length", [1, 2, 7, 16, 33])
def test_parallel_scan_equals_sequential_recurrence(length):
    gen = torch.Generator().manual_seed(length)
    a = torch.rand(3, length, 5, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(3, length, 5, 4, generator=gen, dtype=torch.float64)
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    h1, h2 = pscan(a1, b1), sequential_scan(a2, b2)
    assert torch.allclose(h1, h2, atol=1e-12)
    weights = torch.randn(h1.shape, generator=gen, dtype=torch.float64)
    (h1 * weights).sum().backward()
    (h2 * weights).sum().backward()
    assert torch.allclose(a1.grad, a2.grad, atol=1e-10) and torch.allclose(b1.grad, b2.grad, atol=1e-10)
    # inputs are not modified in place
    assert torch.equal(a1.detach(), a) and torch.equal(b1.detach(), b)


def test_recurrent_step_equals_parallel_forward():
    torch.manual_seed(0)
    backbone = MambaBackbone(d_model=32, n_layers=3, d_state=8, expand=2, d_conv=4).eval()
    x = torch.randn(4, 11, 32)
    with torch.no_grad():
        full = backbone(x)
        state = backbone.init_state(4, x.device)
        steps = []
        for t in range(11):
            h, state = backbone.step(x[:, t], state, t)
            steps.append(h)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4)
    assert torch.allclose(backbone(x[:, :5]), full[:, :5], atol=1e-5)


def test_learns_and_samples_valid_flows(trained, flows):
    ar_flows.check_loss_falls(trained)
    ar_flows.check_valid(trained, flows)


def test_samples_follow_the_requested_class(trained):
    ar_flows.check_class_conditioning(trained)


def test_seeded_sampling_and_save_load_round_trip(trained, tmp_path):
    ar_flows.check_determinism_and_round_trip(trained, tmp_path)


def test_fits_a_real_iot_sentinel_subset(iot_small):
    gen = create_generator("ssm", d_model=64, n_layers=2, d_state=8)
    ar_flows.check_fits_real_data(gen, iot_small)


def test_cpu_sequential_selective_scan_equals_parallel_scan():
    """The fused CPU training path and the log-depth pscan path give the same outputs and gradients."""
    from ntg.models.ssm import selective_scan_sequential

    g = torch.Generator().manual_seed(3)
    batch, length, d, n = 3, 11, 6, 4
    delta = torch.rand(batch, length, d, generator=g, dtype=torch.float64).requires_grad_()
    a = (-torch.rand(d, n, generator=g, dtype=torch.float64)).requires_grad_()
    b = torch.randn(batch, length, n, generator=g, dtype=torch.float64).requires_grad_()
    c = torch.randn(batch, length, n, generator=g, dtype=torch.float64).requires_grad_()
    x = torch.randn(batch, length, d, generator=g, dtype=torch.float64).requires_grad_()
    inputs = (delta, a, b, c, x)

    def parallel(delta, a, b, c, x):
        h = pscan(torch.exp(delta.unsqueeze(-1) * a), (delta * x).unsqueeze(-1) * b.unsqueeze(2))
        return (h @ c.unsqueeze(-1)).squeeze(-1)

    y1, y2 = selective_scan_sequential(*inputs), parallel(*inputs)
    assert torch.allclose(y1, y2, atol=1e-12)
    weights = torch.randn(y1.shape, generator=g, dtype=torch.float64)
    g1 = torch.autograd.grad((y1 * weights).sum(), inputs)
    g2 = torch.autograd.grad((y2 * weights).sum(), inputs)
    for u, v in zip(g1, g2, strict=True):
        assert torch.allclose(u, v, atol=1e-10)


def test_cpu_causal_conv_equals_depthwise_conv1d():
    from ntg.models.ssm import MambaMixer

    torch.manual_seed(1)
    mixer = MambaMixer(d_model=16, d_state=4, expand=2, d_conv=4)
    x = torch.randn(3, 9, 32)
    reference = mixer.conv1d(x.transpose(1, 2))[..., :9].transpose(1, 2)
    assert torch.allclose(mixer._causal_conv(x), reference, atol=1e-6)
