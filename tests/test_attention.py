import math

import torch

from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention


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


def test_attention_parameters_receive_gradients():
    for cls in (L2MultiHeadAttention, MultiHeadAttention):
        mha = cls(8, 2)
        mha(torch.randn(2, 3, 8)).pow(2).sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mha.parameters())
