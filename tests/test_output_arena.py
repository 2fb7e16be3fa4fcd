"""OutputArena (semdict_onnx/_output_arena.py): arrays on reusable blocks, reused only when free."""

from __future__ import annotations

import gc

import numpy as np

from semdict_onnx._output_arena import OutputArena

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


def test_a_block_is_reused_once_every_view_of_its_array_is_gone():
    arena = OutputArena()
    first = arena.arrays([(100, 10)])[0]
    address = first.ctypes.data
    kept = first[3][1:4]  # a view of a view still holds the block
    del first
    gc.collect()
    assert arena.free_blocks == 0
    second = arena.arrays([(100, 10)])[0]
    assert second.ctypes.data != address
    del kept
    gc.collect()
    assert arena.free_blocks == 1
    assert arena.arrays([(100, 10)])[0].ctypes.data == address
    del second


def test_keeping_one_output_keeps_only_its_own_block():
    arena = OutputArena()
    small, large = arena.arrays([(10,), (1000, 100)])
    del large
    assert arena.free_blocks == 1, "the large output's block must be free while the small is kept"
    del small
    assert arena.free_blocks == 2


def test_arrays_still_held_are_never_overwritten():
    arena = OutputArena()
    held = arena.arrays(SHAPES)
    for array in held:
        array[...] = 7.0
    for _ in range(3):
        for array in arena.arrays(SHAPES):
            array[...] = -1.0
    assert all((array == 7.0).all() for array in held)


def test_free_blocks_serve_only_requests_of_their_size_and_are_capped():
    arena = OutputArena(max_free_blocks=2)
    arena.arrays([(1000, 1000)])  # dropped at once: its block is free
    assert arena.free_blocks == 1
    small = arena.arrays([(10,)])[0]
    assert arena.free_blocks == 1, "the large block should stay free, not serve 10 floats"
    arena.arrays([(20,), (30,)])
    del small
    assert arena.free_blocks == 2, "no more than max_free_blocks are kept"
