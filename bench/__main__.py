"""``python -m bench [auth|earning|payouts|all] [--json FILE]``: run benchmarks and print tables."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from bench.common import RESULTS

SUITES = ["auth", "earning", "payouts"]
SUITES.append("partners")  # bench/partners.py: partner callbacks over HTTP


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suite", nargs="?", default="all", choices=[*SUITES, "all"])
    parser.add_argument("--json", default=None, help="also write the tables as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, not for reporting)")
    args, rest = parser.parse_known_args(argv)
    args.rest = rest
    for suite in SUITES if args.suite == "all" else [args.suite]:
        module = importlib.import_module(f"bench.{suite}")
        module.main(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(RESULTS, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
