"""Benchmarks of errbot-att-sms against the carrier sandbox (``python benchmarks/run.py``).

Modules: ``harness`` (sizes, table rows, sandbox counters, the raw baseline), ``botrun``
(errbot's test backend on the default storage), ``client_bench``, ``send_bench``,
``history_bench``, ``flood_bench`` (one area each: its measurements and its table rows)
and ``run`` (the whole run, the table, the command line). Method: docs/BENCHMARKS.md.
"""
