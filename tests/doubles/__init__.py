"""Test doubles: stand-ins for software that cannot run on the CI machines.

Everything in this package is a *test double* (an emulator written for the
tests), never a production component. See ``tests/doubles/README.md``.
"""
