"""The profiler's own memory: at most 24 bytes per tracked live block, measured from the
process's resident memory rather than from the table's own accounting (test_line_exact.py
checks that accounting at 300,000 blocks; this measures the worst case, just after the table
doubled)."""

from __future__ import annotations

import gc

import _memxx
from _profiled import profiled

# 0.7 * 2**22 = 2,936,013: just above it the table has doubled to 2**23 slots (64 MiB), its
# worst load (35 %) and so its highest cost per block, 22.7 B.
BLOCKS = 2_950_000


def rss_growth_while_holding(count: int, seen: dict) -> list:
    gc.collect()
    start = _memxx.rss_bytes()
    kept = [object() for _ in range(count)]
    seen["growth"] = _memxx.rss_bytes() - start
    seen["stats"] = _memxx.hook_stats()
    return kept


def test_each_tracked_live_block_costs_at_most_24_bytes_of_rss():
    gc.disable()
    try:
        plain_runs = []
        for _ in range(2):
            seen: dict = {}
            kept = rss_growth_while_holding(BLOCKS, seen)
            del kept
            plain_runs.append(seen["growth"])
        measured: dict = {}
        _lines, kept = profiled(rss_growth_while_holding, BLOCKS, measured)
        del kept
    finally:
        gc.enable()
    stats = measured["stats"]
    assert stats["live_blocks"] >= BLOCKS
    own = measured["growth"] - min(plain_runs)
    per_block = own / stats["live_blocks"]
    print(
        f"\nprofiler's own RSS: {own / 2**20:.1f} MiB for {stats['live_blocks']:,} live blocks "
        f"= {per_block:.1f} B each (table says {stats['table_bytes'] / stats['live_blocks']:.1f})"
    )
    assert per_block <= 24, f"{per_block:.1f} bytes of RSS per live block"
    # The table's own figure (what hook_stats and docs/reliability.md quote) is an upper bound:
    # pages of the slot array that no block hashed to are never touched.
    assert per_block <= stats["table_bytes"] / stats["live_blocks"] + 1
    assert stats["table_bytes"] / stats["live_blocks"] <= 24
