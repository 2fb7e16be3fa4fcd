"""OutputArena (semdict_onnx/output_arena.py): arrays cut from one block, reused only when free."""

from __future__ import annotations

import gc

import numpy as np

from semdict_onnx.output_arena import OutputArena

SHAPES = [(2, 3, 5), (4, 7), (1,), (2, 2, 2, 3)]


def test_arrays_have_their_shapes_are_aligned_and_do_not_overlap():
    arrays = OutputArena().arrays(SHAPES)
    assert [a.shape for a in arrays] == SHAPES
    for index, array in enumerate(arrays):
        assert array.dtype == np.float32 and array.flags.c_contiguous and array.flags.writeable
        assert array.ctypes.data % 64 == 0
        array[...] = index
    for index, array in enumerate(arrays):
        assert (array == index).all(), "arrays of one call overlap"


def test_a_block_is_reused_once_every_array_cut_from_it_is_gone():
    arena = OutputArena()
    arrays = arena.arrays(SHAPES)
    first = arrays[0].ctypes.data
    kept = arrays[3][1]  # a view of a view still holds the block
    del arrays
    gc.collect()
    assert arena.free_blocks == 0
    again = arena.arrays(SHAPES)
    second = again[0].ctypes.data
    assert second != first
    del kept
    gc.collect()
    assert arena.free_blocks == 1
    assert arena.arrays(SHAPES)[0].ctypes.data == first
    del again
    assert arena.arrays(SHAPES)[0].ctypes.data == second, "the most recent free block is kept"
    assert arena.free_blocks == 1


def test_arrays_still_held_are_never_overwritten():
    arena = OutputArena()
    held = arena.arrays(SHAPES)
    for array in held:
        array[...] = 7.0
    for _ in range(3):
        for array in arena.arrays(SHAPES):
            array[...] = -1.0
    assert all((array == 7.0).all() for array in held)


def test_a_block_far_larger_than_asked_is_not_used_for_a_small_call():
    arena = OutputArena()
    arena.arrays([(1000, 1000)])  # dropped at once: its block is free
    assert arena.free_blocks == 1
    small = arena.arrays([(10,)])
    assert arena.free_blocks == 1, "the large block should stay free, not serve 10 floats"
    del small
    assert arena.free_blocks == 1, "only the most recent free block is kept"
