"""Benchmarks: commands that measure and print figures (never asserted in tests)."""


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


def mapped_mb(path: object) -> float:
    """Resident MB of this process's mappings of the file ``path`` (Linux ``/proc``), else NaN."""
    import os

    target = os.path.realpath(str(path))
    total_kb = 0
    current = ""
    try:
        with open("/proc/self/smaps", encoding="utf-8", errors="replace") as f:
            for line in f:
                head = line.split(maxsplit=5)
                if head and not head[0].endswith(":"):  # a mapping's header line
                    current = head[5].rstrip("\n") if len(head) > 5 else ""
                elif head and head[0] == "Rss:" and current == target:
                    total_kb += int(head[1])
    except OSError:
        return float("nan")
    return total_kb / 1024
