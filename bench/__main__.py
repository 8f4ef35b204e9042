"""``make bench``: run the benchmarks (``BENCH_ARGS`` are passed on, e.g. ``--sizes 2000``)."""

from bench.invoice_hours import main

raise SystemExit(main())
