"""The model lic uses when none is named: `lic encode` without --model, `lccodec.encode`,
`lccodec.codec.open_model`.

The rule (issue 13): of the models whose 768×512 decode takes at most 1 s on 2 CPU threads
(`benchmarks/decode_speed.py`), the one with the best Kodak rate-distortion (BD-rate, real
bitstreams, `benchmarks/results/kodak-*.json`). `lic models` marks it and prints REASON.
"""
from __future__ import annotations

DEFAULT_MODEL = "hyperprior"
REASON = ("the only model with trained transforms so far (Kodak results: docs/results.md); "
          "it decodes a 768x512 image in well under 1 s on 2 CPU threads")
