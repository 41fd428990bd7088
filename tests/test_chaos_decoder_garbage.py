"""Found by chaos/fuzz_frames.py (100,000 frames against a live daemon): a few hundred malformed
frames of ~70 KB raised the daemon's RSS from 78 MB to 550 MB. Describing why a body does not fit
its message class runs cattrs' detailed validation, whose errors sit in reference cycles (each
caught sub-error's traceback holds the frame that holds the list of errors) together with the
frame's body; only the cyclic collector frees them, late (they reach the oldest generation), and
the freed heap stays with the process. A rejected frame must leave nothing for the collector."""
import gc

import msgpack

from protocol.codec import decode
from protocol.errors import MalformedFrame


def test_a_rejected_malformed_frame_leaves_no_reference_cycles_behind():
    frame = msgpack.packb([1, 0, "model.resolve", "m1", None, "c/x", "router",
                           {"k": -1, "type": [2**63 - 1, ["", {}, "x" * 70_000]]}], use_bin_type=True)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            try:
                decode(frame)
            except MalformedFrame:
                pass
        assert gc.collect() == 0, "decoding a malformed frame left garbage only the cyclic collector can free"
    finally:
        gc.enable()
