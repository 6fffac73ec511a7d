#!/usr/bin/env python3
"""Summarises a callgrind output file per request.

Usage: callgrind_summary.py FILE REQUESTS [TOP]

Prints the instructions (Ir) and the allocator calls (malloc, calloc,
realloc) counted in FILE divided by REQUESTS, then the TOP (default 25)
functions by their own instructions, as a share of the total. Used by
bench/profile.sh; reads only the file it is given.
"""

import re
import sys
from collections import defaultdict

ALLOC = {"malloc", "calloc", "realloc", "__libc_malloc", "__libc_calloc", "__libc_realloc"}


def main() -> None:
    path, requests = sys.argv[1], int(sys.argv[2])
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
    names: dict[str, str] = {}
    self_ir: dict[str, int] = defaultdict(int)
    total = 0
    allocs = 0
    current = None
    callee = None
    in_call = False
    name_re = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        m = name_re.match(line)
        if m:
            kind, ident, name = m.groups()
            if name is not None:
                names[ident] = name
            if kind == "fn":
                current = names.get(ident, ident)
            else:
                callee = names.get(ident, ident)
            continue
        if line.startswith("calls="):
            in_call = True
            if callee in ALLOC:
                allocs += int(line[6:].split()[0])
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if len(parts) >= 2:
                ir = int(parts[1])
                if in_call:
                    # the inclusive cost of the call just listed
                    in_call = False
                else:
                    self_ir[current] += ir
                    total += ir
            continue
        if line.startswith("summary:") or line.startswith("totals:"):
            continue
    print(f"instructions per request: {total / requests:,.0f}")
    print(f"allocator calls per request: {allocs / requests:.1f}")
    print(f"requests: {requests:,}; instructions: {total:,}")
    print()
    print("| share | Ir/request | function |")
    print("|---:|---:|---|")
    for name, ir in sorted(self_ir.items(), key=lambda kv: -kv[1])[:top]:
        short = name if len(name) <= 110 else name[:107] + "..."
        print(f"| {100 * ir / total:.1f} % | {ir / requests:,.0f} | `{short}` |")


if __name__ == "__main__":
    main()
