"""Launching self-training on a Cloud TPU slice: `python launch/tpu/run_job.py --help`, docs/scale.md."""
