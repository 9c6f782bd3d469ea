"""Buildbot (`--format buildbot`): lines that the MedusaTest step in step.py counts;
master.cfg is an example configuration."""
