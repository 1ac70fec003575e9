import pytest
import torch

from vitgan_lite.patches import overlapping_patches, patchify, unpatchify


def test_patchify_unpatchify_are_exact_inverses():
    x = torch.randn(2, 3, 32, 32)
    p = patchify(x, 4)
    assert p.shape == (2, 64, 48)
    assert torch.equal(unpatchify(p, 4), x)
    assert torch.equal(patchify(unpatchify(p, 4), 4), p)


def test_patch_i_is_the_ith_block_row_major_with_p1_p2_c_inside():
    x = torch.randn(2, 3, 16, 16)
    p = patchify(x, 4)
    for i in range(16):
        r, c = divmod(i, 4)
        block = x[:, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4]          # (B, C, P, P)
        expected = block.permute(0, 2, 3, 1).reshape(2, -1)         # (p1 p2 c)
        assert torch.equal(p[:, i], expected)


def test_overlapping_patches_give_64_tokens_at_32x32_and_see_their_neighbours():
    x = torch.randn(2, 3, 32, 32)
    tokens = overlapping_patches(x, 4)
    assert tokens.shape == (2, 64, 3 * 8 * 8)
    # token (r, c) is the 8x8 window starting at (4r - 2, 4c - 2) of the zero-padded image, (c p1 p2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in [0, 9, 27, 63]:
        r, c = divmod(i, 8)
        window = padded[:, :, 4 * r:4 * r + 8, 4 * c:4 * c + 8]
        assert torch.equal(tokens[:, i], window.reshape(2, -1))


@pytest.mark.parametrize("fn", [patchify, overlapping_patches])
def test_patch_size_that_does_not_divide_the_image_is_rejected(fn):
    with pytest.raises(ValueError, match="not divisible by patch_size=6"):
        fn(torch.randn(1, 3, 32, 32), 6)


def test_unpatchify_rejects_wrong_patch_width():
    with pytest.raises(ValueError, match=r"expected patches of shape \(B, N, 48\)"):
        unpatchify(torch.randn(1, 64, 47), 4)
