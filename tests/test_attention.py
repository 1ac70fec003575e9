import math
import warnings
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention, sdpa_kernel_name


def naive_attention(q, k, v, logits_fn):
    """One head, one sample, loops over query and key positions."""
    n = q.shape[0]
    logits = torch.tensor([[logits_fn(q[i], k[j]) for j in range(n)] for i in range(n)])
    attn = torch.softmax(logits, dim=-1)
    return attn @ v, attn


def _by_heads(t, heads):
    b, n, d = t.shape
    return t.view(b, n, heads, d // heads).transpose(1, 2)


def test_l2_attention_is_negative_squared_distance_with_tied_weights():
    dim, heads = 12, 3
    mha = L2MultiHeadAttention(dim, heads)
    x = torch.randn(2, 5, dim)
    y, attn = mha(x, return_attention=True)
    qk = _by_heads(mha.to_qk(x), heads)        # W_q = W_k: one projection
    v = _by_heads(mha.to_v(x), heads)
    d = dim // heads
    out = torch.zeros(2, heads, 5, d)
    for b in range(2):
        for h in range(heads):
            out[b, h], a = naive_attention(qk[b, h], qk[b, h], v[b, h],
                                           lambda qi, kj: -((qi - kj) ** 2).sum().item() / math.sqrt(d))
            torch.testing.assert_close(attn[b, h], a, atol=1e-5, rtol=1e-5)
    expected = mha.proj(out.transpose(1, 2).reshape(2, 5, dim))
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, heads, 5))
    # the nearest key (itself, distance 0) gets the largest weight in every row
    assert torch.equal(attn.argmax(-1), torch.arange(5).expand(2, heads, 5))


def test_l2_fused_and_reference_paths_agree():
    torch.manual_seed(1)
    mha = L2MultiHeadAttention(48, 6)
    x = torch.randn(4, 65, 48) * 3
    reference, _ = mha(x, return_attention=True)
    torch.testing.assert_close(mha(x), reference, atol=1e-5, rtol=1e-5)
    mha.fused = False
    torch.testing.assert_close(mha(x), reference, atol=1e-5, rtol=1e-5)


def test_dot_product_attention_by_hand_and_fused():
    dim, heads = 8, 2
    mha = MultiHeadAttention(dim, heads)
    x = torch.randn(1, 4, dim)
    y, attn = mha(x, return_attention=True)
    q, k, v = (_by_heads(t, heads) for t in mha.to_qkv(x).chunk(3, -1))
    for h in range(heads):
        _, a = naive_attention(q[0, h], k[0, h], v[0, h], lambda qi, kj: (qi @ kj).item() / math.sqrt(dim // heads))
        torch.testing.assert_close(attn[0, h], a, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(mha(x), y, atol=1e-6, rtol=1e-5)


def _true_gradients(mha):
    """{name: (out, ...) gradient} of a loss, in float64: a gradient that cancels exactly is ~1e-16 there."""
    mha = mha.double()
    names, params = zip(*mha.named_parameters())
    grads = torch.autograd.grad(mha(torch.randn(2, 5, 8, dtype=torch.float64)).pow(2).sum(), params)
    return dict(zip(names, grads))


@pytest.mark.parametrize("cls", [L2MultiHeadAttention, MultiHeadAttention])
def test_attention_parameters_receive_true_gradients(cls):
    grads = _true_gradients(cls(8, 2))
    assert all(g.abs().max() > 1e-6 for g in grads.values())
    if cls is L2MultiHeadAttention:
        assert "to_qk.bias" not in grads                      # tied q/k: no bias (it cancels in q - k)


def test_a_tied_qk_bias_and_the_dot_product_key_bias_cancel():
    """Why to_qk has no bias: its gradient is zero. The key third of to_qkv's bias cancels the same way."""
    l2 = L2MultiHeadAttention(8, 2)
    l2.to_qk = torch.nn.Linear(8, 8)                          # the old, biased tied projection
    grads = _true_gradients(l2)
    assert grads["to_qk.bias"].abs().max() < 1e-12 < 1e-6 < grads["to_qk.weight"].abs().max()
    g_q, g_k, g_v = _true_gradients(MultiHeadAttention(8, 2))["to_qkv.bias"].chunk(3)
    assert g_k.abs().max() < 1e-12 and g_q.abs().max() > 1e-6 and g_v.abs().max() > 1e-6


def _l2_reference_and_fused(dim, heads, dtype=torch.float64, seed=0):
    """Output and gradients (w.r.t. x and every parameter) of the reference and the fused L2 path."""
    torch.manual_seed(seed)
    mha = L2MultiHeadAttention(dim, heads).to(dtype)
    x = (2 * torch.randn(3, 17, dim, dtype=dtype)).requires_grad_()
    results = []
    for fused in (False, True):
        mha.fused = fused
        y = mha(x)
        grads = torch.autograd.grad(y.pow(2).sum(), [x, *mha.parameters()])
        results.append((y, grads))
    return results


@pytest.mark.parametrize("head_dim", [64, 7, 8, 12])   # d+1 = 65 -> 72; 8, a multiple already; 9 -> 16; 13 -> 16
def test_l2_padded_fused_path_equals_reference_forward_and_gradients(head_dim):
    (y_ref, g_ref), (y_fused, g_fused) = _l2_reference_and_fused(2 * head_dim, 2)
    torch.testing.assert_close(y_fused, y_ref)
    for g_f, g_r in zip(g_fused, g_ref):
        torch.testing.assert_close(g_f, g_r)


@pytest.mark.parametrize("head_dim", [64, 7, 12])
def test_l2_sdpa_inputs_are_zero_padded_to_a_multiple_of_8(head_dim):
    q, k, v = torch.randn(3, 2, 2, 5, head_dim).unbind(0)
    q_pad, k_pad, v_pad = L2MultiHeadAttention.l2_sdpa_inputs(q, k, v)
    d_pad = 8 * math.ceil((head_dim + 1) / 8)
    assert q_pad.shape == k_pad.shape == v_pad.shape == (2, 2, 5, d_pad)
    expected_logits = 2 * q @ k.transpose(-2, -1) - k.pow(2).sum(-1)[..., None, :]   # q'.k' = 2 q.k - ||k||^2
    torch.testing.assert_close(q_pad @ k_pad.transpose(-2, -1), expected_logits)
    assert torch.equal(v_pad[..., :head_dim], v) and not v_pad[..., head_dim:].any()


def test_cpu_flash_kernel_runs_the_padded_l2_inputs_but_not_the_unpadded_ones():
    mha = L2MultiHeadAttention(48, 3)   # head dim 16: q', k' have 17 columns, v 16
    x = torch.randn(2, 9, 48, requires_grad=True)
    q, k, v = mha.qkv(x)
    padded = mha.l2_sdpa_inputs(q, k, v)
    q_aug = torch.cat([q, torch.ones_like(q[..., :1])], -1)                  # (B, h, N, 17)
    k_aug = torch.cat([2 * k, -k.pow(2).sum(-1, keepdim=True)], -1)         # (B, h, N, 17)
    unpadded = (q_aug, k_aug, v)                                             # v: (B, h, N, 16)
    assert sdpa_kernel_name(*padded, scale=mha.scale) == "FLASH_ATTENTION"
    assert sdpa_kernel_name(*unpadded, scale=mha.scale) == "MATH"
    reference, _ = mha(x, return_attention=True)
    (grad_reference,) = torch.autograd.grad(reference.sum(), x)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):                       # only flash: raises if it declines
        y = mha(x)
        (grad,) = torch.autograd.grad(y.sum(), x)
        with pytest.raises(RuntimeError), warnings.catch_warnings(record=True) as declined:
            warnings.simplefilter("always")
            F.scaled_dot_product_attention(*unpadded, scale=mha.scale)
    assert any("same last dimension" in str(w.message) for w in declined)
    torch.testing.assert_close(y, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad, grad_reference, atol=1e-5, rtol=1e-5)


def test_sdpa_kernel_name_follows_the_enabled_backends_and_pytorchs_own_choice():
    q, k, v = torch.randn(3, 2, 2, 5, 16).unbind(0)
    for q_, k_ in ((q, k), (F.pad(q, (0, 1)), F.pad(k, (0, 1)))):     # same head dims; d+1 against d
        expected = SDPBackend(torch._fused_sdp_choice(q_, k_, v, scale=0.25)).name
        assert sdpa_kernel_name(q_, k_, v, scale=0.25) == expected
    with sdpa_kernel(SDPBackend.MATH):
        assert sdpa_kernel_name(q, k, v) == "MATH"


def test_l2_fused_path_double_backward_under_the_math_kernel():
    """R1 differentiates a gradient; the trainer runs it with only the MATH backend enabled."""
    def r1_grads(fused):
        torch.manual_seed(0)
        mha = L2MultiHeadAttention(24, 2, fused=fused).double()
        x = torch.randn(2, 7, 24, dtype=torch.float64, requires_grad=True)
        (grad_x,) = torch.autograd.grad(mha(x).pow(2).sum(), x, create_graph=True)
        return torch.autograd.grad(grad_x.pow(2).sum(), list(mha.parameters()))
    with sdpa_kernel(SDPBackend.MATH):
        fused = r1_grads(True)
    for g_f, g_r in zip(fused, r1_grads(False)):
        torch.testing.assert_close(g_f, g_r)


@pytest.mark.parametrize("cls", [L2MultiHeadAttention, MultiHeadAttention])
def test_cpu_bf16_autocast_takes_the_explicit_path(cls):
    """On the CPU under bf16 autocast the explicit logits are faster than SDPA's flash kernel
    (benchmarks/RESULTS.md): the fused module must then compute exactly the reference path."""
    from vitgan_lite.attention import flash_is_slow
    torch.manual_seed(0)
    attn, x = cls(32, 4), torch.randn(2, 9, 32)
    assert not flash_is_slow(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert flash_is_slow(x)
        fused, reference = attn(x), attn(x, return_attention=True)[0]
        with mock.patch("torch.nn.functional.scaled_dot_product_attention", side_effect=AssertionError("SDPA ran")):
            attn(x)
    assert fused.dtype == torch.bfloat16 and torch.equal(fused, reference)
    with torch.autocast("cpu", dtype=torch.float16):
        assert not flash_is_slow(x)
