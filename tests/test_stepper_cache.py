"""The stepper's growing key/value storage (lab.generation.stepper), without a model: joining and leaving rows
copy each block of the cache once into storage with room, right-aligned in time with zero padding, and the next
decoding step writes into that storage instead of growing it again."""

from __future__ import annotations

import torch

from lab.generation.stepper import _growing_layer_class, _runs


def _layer(rows: int, width: int, fill: float):
    layer = _growing_layer_class()()
    block = torch.full((rows, 2, width, 4), fill)
    layer.update(block, block.clone())
    return layer


def test_packed_rows_are_right_aligned_over_zero_padding_with_room_to_grow():
    old, new = _layer(2, 5, 1.0), _layer(1, 3, 2.0)
    old.pack([old.keys, new.keys], [old.values, new.values], 5)
    assert old.keys.shape == (3, 2, 5, 4) and old._store[0].shape[-2] == 5 + old.chunk
    assert bool((old.keys[:2] == 1).all()) and bool((old.keys[2, :, :2] == 0).all())
    assert bool((old.keys[2, :, 2:] == 2).all()) and torch.equal(old.keys, old.values)


def test_the_step_after_a_pack_writes_into_the_packed_storage():
    layer = _layer(2, 5, 1.0)
    layer.pack([layer.keys[1:2]], [layer.values[1:2]], 5)  # row 0 left
    storage = layer._store[0]
    step = torch.full((1, 2, 1, 4), 3.0)
    keys, _ = layer.update(step, step.clone())
    assert layer._store[0] is storage and keys.shape == (1, 2, 6, 4) and bool((keys[0, :, 5] == 3).all())


def test_rows_kept_are_copied_as_runs_of_consecutive_rows():
    assert _runs([0, 1, 2, 5, 6, 9]) == [(0, 3), (5, 7), (9, 10)]
    assert _runs([]) == [] and _runs([4]) == [(4, 5)]
