"""Rounds: each point is measured in `rounds` worker processes, and its row pools them.

Each round's reply is logged to rounds.jsonl (`RoundLog.add`); the point's row is made when its last round is
in, or when one fails, by `combine_rounds`, which is also where the throughput and roofline columns are
computed, once, from the pooled time. A point whose row is in results.csv (measured with the same source) is
final; rounds already logged are not measured again.
"""

from __future__ import annotations

from bench.measuring.points import Point
from bench.measuring.rows import Reply, point_hash
from bench.measuring.store import RunFolder
from bench.measuring.timing import metrics
from bench.measuring.workers import Slot


def weighted_quantile(values_and_weights: list[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative weight reaches q of the total."""
    ordered = sorted(values_and_weights)
    total = sum(weight for _, weight in ordered)
    running = 0.0
    for value, weight in ordered:
        running += weight
        if running >= q * total - 1e-12:
            return value
    return ordered[-1][0]


def combine_rounds(point: Point, records: list[dict], rounds: int, peaks: dict) -> dict:
    """The row of a point from its rounds' records (each {"round", "row", "samples"}), oldest first.

    time_ms, p20 and p80 pool every timed call of every ok round (each round's sketch weighted by its
    repetitions); time_ms_lo/hi are the lowest and highest round medians; throughput and the roofline
    columns come from the pooled time and the device's ceilings `peaks`. A failed round makes the row
    failed with that round's status and reason.
    """
    records = sorted(records, key=lambda record: record["round"])
    ok = [record for record in records if record["row"]["status"] == "ok"]
    bad = [record for record in records if record["row"]["status"] != "ok"]
    row = dict((ok or records)[-1]["row"])
    if ok:
        medians = [record["row"]["time_ms"] for record in ok]
        if len(ok) > 1:
            samples = [(value, record["row"]["reps"] / len(record["samples"]))
                       for record in ok for value in record["samples"]]
            row.update(time_ms=weighted_quantile(samples, 0.5), time_ms_p20=weighted_quantile(samples, 0.2),
                       time_ms_p80=weighted_quantile(samples, 0.8))
        row.update(metrics(point, row["time_ms"], peaks))
        maximum = {column: max((record["row"].get(column) or 0.0 for record in ok), default=None)
                   for column in ("peak_mem_mb", "reserved_mem_mb", "resident_mem_mb", "load_avg")}
        energies = [record["row"]["energy_mj"] for record in ok if record["row"].get("energy_mj") is not None]
        row.update(time_ms_lo=min(medians), time_ms_hi=max(medians), reps=sum(r["row"]["reps"] for r in ok),
                   energy_mj=sum(energies) / len(energies) if energies else None,
                   **{k: v for k, v in maximum.items() if v is not None})
    if bad:
        first = bad[0]
        reason = first["row"].get("error", "")
        row.update(status=first["row"]["status"],
                   error=f"round {first['round']} of {rounds}: {reason}" if first["round"] > 1 else reason)
    indices = sorted({str(record.get("device_index")) for record in records if record.get("device_index") is not None})
    row.update(rounds=len(records), device_index="+".join(indices))
    return row


def _rows_by_key(rows) -> dict:
    return {Point.from_row(row).key: row for row in rows}


class RoundLog:
    """The rounds of every point of a sweep: what is logged, what is final, what is left to measure."""

    def __init__(self, folder: RunFolder, points: list[Point], rounds: int, peaks: dict):
        self.folder, self.rounds, self.peaks = folder, rounds, peaks
        self.hashes = {point.key: point_hash(point) for point in points}
        self.final: set = set()
        for key, row in _rows_by_key(folder.rows()).items():
            if self.hashes.get(key) == row["source_hash"] and (row["status"] != "ok"
                                                               or int(float(row["rounds"] or 1)) >= rounds):
                self.final.add(key)
        self.logged: dict[tuple, list[dict]] = {}
        for record in folder.rounds():
            key = tuple(record.get("key", ()))
            if key in self.hashes and record.get("row", {}).get("source_hash") == self.hashes[key]:
                self.logged.setdefault(key, []).append(record)

    def missing(self, point: Point) -> list[int]:
        """The rounds of `point` still to measure."""
        if point.key in self.final:
            return []
        have = {record["round"] for record in self.logged.get(point.key, [])}
        return [r for r in range(1, self.rounds + 1) if r not in have]

    def recover_unwritten_rows(self, points: list[Point]) -> list[dict]:
        """Final rows of the points whose rounds are all logged (or one failed) but whose row never reached
        the table (its write failed: a full disk); they are to be written now instead of measured again."""
        rows = []
        for point in points:
            records = list({r["round"]: r for r in self.logged.get(point.key, [])}.values())  # the latest per round
            if point.key in self.final or not records:
                continue
            if len(records) >= self.rounds or any(r["row"].get("status") != "ok" for r in records):
                self.final.add(point.key)
                rows.append(combine_rounds(point, records, self.rounds, self.peaks))
        return rows

    def add(self, point: Point, round_: int, reply: Reply, slot: Slot) -> dict | None:
        """Log one round of a point; returns its final row when this completes it (or fails it), else None."""
        record = {"key": list(point.key), "round": round_, "device_index": slot.index, "pid": reply.pid,
                  "row": reply.row, "samples": list(reply.samples)}
        self.folder.append_round(record)
        records = [r for r in self.logged.get(point.key, []) if r["round"] != round_] + [record]
        self.logged[point.key] = records
        if reply.row["status"] != "ok" or len(records) >= self.rounds:
            self.final.add(point.key)
            return combine_rounds(point, records, self.rounds, self.peaks)
        return None
