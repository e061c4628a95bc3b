#!/usr/bin/env python3
"""Runs the Autobahn TestSuite cases against a websocket server with kosoku
and prints a summary. Exit 1 if any case is FAILED or could not be run
(ERROR), or its closing handshake was wrong (FAILED, WRONG CODE, UNCLEAN,
FAILED BY CLIENT), as Autobahn's own report marks them red. NON-STRICT,
INFORMATIONAL and UNIMPLEMENTED are listed, not fatal.

usage: autobahn.py URL OUTDIR [--include CASE]... [--exclude CASE]...
"""

import argparse
import asyncio
import collections
import sys
import time

from kosoku import FailureError, run_fuzzingclient
from kosoku._report import write_reports

FATAL = {"FAILED", "ERROR"}
CLOSE_FINE = {"OK", "INFORMATIONAL"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("outdir")
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--exclude", action="append", default=[])
    args = parser.parse_args()

    started = time.monotonic()
    try:
        results = asyncio.run(
            run_fuzzingclient(args.url, args.include or None, args.exclude or None)
        )
    except FailureError as failure:
        # kosoku raises when any case is not OK (NON-STRICT included); its
        # results are all the cases, which we judge ourselves below.
        results = failure.results
    elapsed = time.monotonic() - started
    if not results:
        print("autobahn: no case ran", file=sys.stderr)
        return 1
    write_reports(results, args.outdir)

    by_verdict = collections.Counter()
    fatal = []
    for r in results:
        behavior = r.behavior.value
        close = r.behavior_close.value
        by_verdict[f"{behavior}/{close}"] += 1
        if behavior in FATAL or close not in CLOSE_FINE:
            fatal.append(r)

    print(f"autobahn: {len(results)} cases in {elapsed:.1f} s against {args.url}")
    for verdict, n in sorted(by_verdict.items()):
        print(f"  {n:4d}  behavior/close = {verdict}")
    for r in results:
        b = r.behavior.value
        if b not in ("OK",) and r not in fatal:
            print(f"  note {r.case_id}: {b}/{r.behavior_close.value}: {r.result}")
    for r in fatal:
        print(
            f"  FAILED {r.case_id}: {r.behavior.value}/{r.behavior_close.value}: "
            f"{r.result} | close: {r.result_close}"
        )
    print(f"autobahn report: {args.outdir}/index.html")
    passed = len(results) - len(fatal)
    # The plain closing line CI reads.
    print(f"{passed} passed, {len(fatal)} failed")
    return 1 if fatal else 0


if __name__ == "__main__":
    sys.exit(main())
