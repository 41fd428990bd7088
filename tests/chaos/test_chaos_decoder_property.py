"""Property: the frame decoder, fed valid frames mutated by hypothesis, raises only FrameErrors."""
import random

from hypothesis import given, settings, strategies as st

from chaos.fuzz_frames import Mutator, corpus
from protocol.codec import decode
from protocol.errors import FrameError

CORPUS = corpus()


@settings(max_examples=400, deadline=None, database=None)
@given(st.sampled_from(CORPUS), st.integers(0, 2**32), st.lists(st.tuples(st.integers(0, 4096), st.binary(max_size=9)),
                                                                 max_size=4))
def test_mutated_valid_frames_never_raise_anything_but_frame_errors(frame, seed, splices):
    mutated = Mutator(random.Random(seed), CORPUS).frame() if seed % 2 else frame
    for at, data in splices:
        at %= len(mutated) + 1
        mutated = mutated[:at] + data + mutated[at + len(data) // 2:]
    try:
        decode(mutated)
    except FrameError:
        pass
