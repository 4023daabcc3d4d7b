"""Batches and augmentations: exact coverage, determinism, DDP shards, correct crops/flips."""

from __future__ import annotations

import torch

from archopt.data import BatchLoader, RandomCrop, RandomHorizontalFlip, normalize


def _data(n=37):
    x = torch.arange(n * 2 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8)
    return x.view(n, 2, 4, 4), torch.arange(n)


def test_epoch_covers_every_example_once():
    x, y = _data()
    bl = BatchLoader(x, y, 8, mean=(0.5, 0.5), std=(0.25, 0.25), shuffle=True, seed=3)
    seen = torch.cat([yb for _, yb in bl])
    assert sorted(seen.tolist()) == list(range(37)) and len(bl) == 5


def test_order_depends_on_seed_and_epoch_only():
    x, y = _data()

    def order(seed, epoch):
        bl = BatchLoader(x, y, 8, mean=(0, 0), std=(1, 1), shuffle=True, seed=seed)
        bl.set_epoch(epoch)
        return torch.cat([yb for _, yb in bl]).tolist()

    assert order(1, 2) == order(1, 2)
    assert order(1, 2) != order(1, 3)
    assert order(1, 2) != order(2, 2)


def test_ddp_shards_are_disjoint_and_cover():
    x, y = _data(40)
    shards = []
    for rank in range(2):
        bl = BatchLoader(x, y, 8, mean=(0, 0), std=(1, 1), shuffle=True, seed=0, rank=rank,
                         world_size=2)
        shards.append(torch.cat([yb for _, yb in bl]).tolist())
    assert len(shards[0]) == len(shards[1]) == 20
    assert sorted(shards[0] + shards[1]) == list(range(40))


def test_normalisation_matches_formula():
    x, y = _data(4)
    (xb, _), = list(BatchLoader(x, y, 4, mean=(0.1, 0.2), std=(0.5, 0.25)))
    expect = (x.float() / 255 - torch.tensor([0.1, 0.2]).view(1, 2, 1, 1)) / torch.tensor(
        [0.5, 0.25]).view(1, 2, 1, 1)
    assert torch.allclose(xb, expect)
    assert torch.allclose(normalize(x, (0.1, 0.2), (0.5, 0.25)), expect)


def test_random_crop_returns_windows_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 6, 6)
    out = RandomCrop(6, padding=2)(x, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    offsets = set()
    for i in range(16):
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if torch.equal(out[i], padded[i, :, dy:dy + 6, dx:dx + 6])]
        assert hits, f"image {i} is not a window"
        offsets.add(hits[0])
    assert len(offsets) > 3  # offsets vary


def test_crop_without_padding_is_identity_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 1, 4, 4)
    assert torch.equal(RandomCrop(4, padding=0)(x, g), x)
    assert torch.equal(RandomHorizontalFlip(1.0)(x, g), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(x, g), x)
