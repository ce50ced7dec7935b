"""bench/run's parts: processes (servers, /proc readings, set-up), cells (one measurement
each), results (the raw lines, medians, ratios, the floor) and report (latest.md, sweep.md and the
summary lines). Standard library only."""
