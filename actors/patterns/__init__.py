"""The pattern store's sans-IO core (issue 14; DESIGN §4.7): fingerprints, store, scoring, prior.

* ``fingerprint`` — pluggable text → unit vector (``hashed`` default, ``minilm`` optional extra)
* ``store``       — :class:`PatternStore`: outcome rows in, gated recommendations out
* ``scoring``     — shrinkage, the cost blend, the evidence gate, the cost-aware prior
* ``types``       — :class:`Recommendation`, :class:`Decision`, :class:`OutcomeRow`
"""

DEFAULT_FINGERPRINT = "hashed"
FINGERPRINT_NAMES = ("hashed", "minilm")
