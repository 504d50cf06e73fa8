"""Fuzz targets (one per sans-I/O parser, one per capture layer) and a std-lib mutation loop.

`tests/test_fuzz_smoke.py` runs every target briefly in CI; `bench/fuzz.py` (`make fuzz`) runs them long.
"""
