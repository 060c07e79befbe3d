"""Benchmarks: commands that measure and print figures (their timings are never asserted in
tests)."""


def rss_mb() -> float:
    """This process's resident set size in MB (Linux ``/proc``), NaN where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
