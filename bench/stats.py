#!/usr/bin/env python3
"""Median and range of the measurements the bench scripts collect.

Usage: stats.py FILE   -- FILE has lines "name value" (value a number); prints, per name,
median, min and max over its values, in the order names first appear.
"""
import statistics, sys

order, vals = [], {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) != 2:
        continue
    name, v = parts[0], float(parts[1])
    if name not in vals:
        order.append(name)
        vals[name] = []
    vals[name].append(v)
for n in order:
    v = vals[n]
    print(f"{n:28s} median {statistics.median(v):10.3f}  range {min(v):.3f}–{max(v):.3f}  (n={len(v)})")
