"""The model lic uses when none is named: `lic encode` without --model, `lccodec.encode`,
`lccodec.codec.open_model`.

The rule (issue 13): of the models whose 768×512 decode takes at most 1 s on 2 CPU threads
(`benchmarks/decode_speed.py`), the one with the best Kodak rate-distortion (BD-rate, real
bitstreams, `benchmarks/results/kodak-*.json`). `lic models` marks it and prints REASON.
"""
from __future__ import annotations

DEFAULT_MODEL = "reference"
REASON = ("best Kodak RD of the models that decode 768x512 in <= 1 s on 2 CPU threads: BD-rate "
          "-18.3 % against the context model, -9.9 % against the hyperprior (2026-12-07); decode 0.71 s "
          "(context 0.48 s, hyperprior 0.26 s; benchmarks/decode_speed.py, 2026-12-06); docs/results.md")
