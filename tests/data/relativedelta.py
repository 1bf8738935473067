#!/usr/bin/python3
# Writes relativedelta.tsv: relativedelta(dt1, dt2) as python-dateutil computes
# it, for dt1 in a zone with a fixed offset and dt2 in UTC — the shape of the
# reference's reldate() calls. Run: python3 relativedelta.py > relativedelta.tsv
import datetime
import random

from dateutil.relativedelta import relativedelta
from dateutil.tz import tzoffset, tzutc

rng = random.Random(20151121)
offsets = [0, 3600, -18000, 19800, 45900, -34200, 50400, -43200]
epoch = datetime.datetime(2024, 1, 1)

# Month ends, leap days and year ends, where the month arithmetic is subtle.
edges = [datetime.datetime(y, m, d, h) for y in (2024, 2025) for m, d in
         ((1, 31), (2, 28), (2, 29), (3, 1), (3, 31), (4, 30), (12, 31)) for h in (0, 23)
         if not (y == 2025 and (m, d) == (2, 29))]

print("dt1\toffset\tdt2\tyears\tmonths\tdays\thours\tminutes\tseconds\tmicroseconds")
rows = []
for a in edges:
    for b in edges:
        if a >= b:
            rows.append((a, rng.choice(offsets), b))
for _ in range(400):
    b = epoch + datetime.timedelta(seconds=rng.randrange(0, 3 * 365 * 86400))
    a = b + datetime.timedelta(seconds=rng.choice([rng.randrange(0, 86400 * 3),
                                                   rng.randrange(0, 86400 * 800)]),
                               microseconds=rng.randrange(0, 1000000))
    rows.append((a, rng.choice(offsets), b))
for a, off, b in rows:
    dt1 = a.replace(tzinfo=tzoffset(None, off))
    dt2 = (b - datetime.timedelta(seconds=off)).replace(tzinfo=tzutc())
    if dt1 < dt2:
        continue
    rd = relativedelta(dt1, dt2)
    print("\t".join([dt1.strftime("%Y-%m-%d %H:%M:%S.%f"), str(off), dt2.strftime("%Y-%m-%d %H:%M:%S.%f")]
                    + [str(v) for v in (rd.years, rd.months, rd.days, rd.hours, rd.minutes, rd.seconds, rd.microseconds)]))
