"""Checks of a build's decoder, run by the tests and by the benchmark scripts.

* :mod:`.fuzz` — mutated .lic files: every decode succeeds or raises LicError, quickly.
* :mod:`.cross_machine` — encode on one device, decode on others: identical latents.
"""
