"""``make bench``: run the benchmarks (``BENCH_ARGS`` are passed on, e.g. ``--sizes 2000``).

``python -m bench --extract-only N [--repeat R]``: only the TOPdesk extract of a world of N registrations a
month (``bench/extract_only.py``); everything else goes to ``bench/invoice_hours.py``.
"""

import sys

if "--extract-only" in sys.argv:
    from bench.extract_only import main as extract_only

    raise SystemExit(extract_only(sys.argv[1:]))

from bench.invoice_hours import main

raise SystemExit(main())
