"""Fuzz targets for the readers edgekit wrote itself, their seed corpus, and the checkpoint boundary's tracer.

Run one with ``scripts/fuzz.sh TARGET SECONDS`` (atheris, coverage-guided); the tests replay every input a run
ever found failing (tests/fixtures/fuzz/) and mutate real checkpoints under the tracer.
"""
