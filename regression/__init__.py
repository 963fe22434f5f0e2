"""Publish with proof: a per-merchant regression set, generated from the catalog at import, plus
corrected reviews and hand-added cases; run on a draft KB version (or a prompt draft) through the
production agent before viewers see it. See docs/regression.md."""
