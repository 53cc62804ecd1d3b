#!/usr/bin/env python3
"""scripts/cost-model.py from the stored counts: the totals add up, the fleet arithmetic is the
design's, the measured counts are what the ingest node's design says they are, and the README's
"Cost at scale" table is what the script prints.

    python3 tests/deploy/test_cost_model.py      (standard library only; also runs under pytest)
"""
import importlib.util
import json
import re
import subprocess
import sys
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/cost-model.py"

spec = importlib.util.spec_from_file_location("cost_model", SCRIPT)
cm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cm)


def run(*args: str) -> str:
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=True, capture_output=True,
                          text=True).stdout


def number(cell: str) -> float:
    cell = cell.strip().strip("*")
    return float(cell.replace(",", "")) if cell not in ("", "-") else 0.0


class CostModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = json.loads(run("--json"))
        cls.table = run()

    def test_json_totals_are_the_sums_of_their_lines(self):
        for name, s in self.data["scenarios"].items():
            self.assertAlmostEqual(s["total"], sum(s["lines"].values()), places=6, msg=name)
            self.assertAlmostEqual(s["ivs_total"], sum(s["ivs"].values()), places=6, msg=name)
            self.assertLessEqual(s["video_total"], s["total"] + 1e-9, name)
            self.assertTrue(all(v >= 0 for v in s["lines"].values()), name)
        idle = self.data["idle_month"]
        self.assertAlmostEqual(idle["total"], sum(idle["lines"].values()), places=6)

    def test_printed_table_adds_up(self):
        rows = [line for line in self.table.splitlines() if line.startswith("| ")]
        header = [c.strip() for c in rows[0].strip("|").split("|")]
        cols = len(header) - 1
        lines, total, ivs_lines, ivs_total = [], None, [], None
        for row in rows[1:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            name, values = cells[0], [number(c) for c in cells[1:]]
            self.assertEqual(len(values), cols, row)
            if name == "**Rill total**":
                total = values
            elif name == "**Amazon IVS total (video only)**":
                ivs_total = values
            elif name.startswith("IVS "):
                ivs_lines.append(values)
            elif not name.startswith("Rill video only"):
                lines.append(values)
        self.assertIsNotNone(total)
        self.assertIsNotNone(ivs_total)
        for i in range(cols):
            summed = sum(v[i] for v in lines)
            # cells are rounded to cents (or to dollars above 100): allow that rounding
            self.assertAlmostEqual(summed, total[i], delta=max(0.02, 0.6 * len(lines) if total[i] >= 100 else 0.01 * len(lines)),
                                   msg=f"column {header[i + 1]}")
            self.assertAlmostEqual(sum(v[i] for v in ivs_lines), ivs_total[i], delta=1.0 if ivs_total[i] >= 100 else 0.02)

    def test_fleet_arithmetic(self):
        self.assertEqual(cm.capacity_for(4), 2)  # floor(4 * 0.85 / 1.4)
        self.assertEqual(cm.capacity_for(1), 1)
        self.assertEqual(cm.tasks_for(0), 1)  # the idle minimum
        self.assertEqual(cm.tasks_for(1), 1)
        self.assertEqual(cm.tasks_for(1000), 834)  # 1000 / (2 * 0.6)

    def test_measured_counts_match_the_ingest_design(self):
        r = self.data["rates"]
        renditions = len(r["renditions"])
        self.assertEqual(renditions, 5, r["renditions"])  # 4 video rungs + audio
        # 1 s segments: one segment and one playlist PUT per rendition per second
        self.assertAlmostEqual(r["s3_puts_segment"] / (3600 * renditions), 1.0, delta=0.06)
        self.assertAlmostEqual(r["s3_puts_playlist"] / r["s3_puts_segment"], 1.0, delta=0.02)
        # a quality sample every 5 s (and nothing else written by the node but the fleet's
        # items); the fleet's lease and registry rewritten every 5 s when the node has them
        self.assertAlmostEqual(r["sample_writes_per_stream_hour"], 720, delta=72)
        self.assertAlmostEqual(r["ingest_wru_per_stream_hour"], r["sample_writes_per_stream_hour"], delta=36)
        for name in ("lease_writes_per_stream_hour", "registry_writes_per_node_hour"):
            if r[name]:
                self.assertAlmostEqual(r[name], 720, delta=72, msg=name)
        # every PostToConnection of a chat message reaches each socket once
        self.assertAlmostEqual(r["chat_posts_per_socket"], 1.0, delta=0.1)

    def test_readme_shows_what_the_script_prints(self):
        readme = (ROOT / "README.md").read_text()
        section = readme.split("## Cost at scale", 1)[1].split("\n## ", 1)[0]
        table = [line for line in self.table.splitlines() if line.startswith("| ")]
        shown = [line for line in section.splitlines() if line.startswith("| ")]
        self.assertEqual(shown[:len(table)], table, "README's Cost at scale table is stale: rerun the script")


if __name__ == "__main__":
    unittest.main(verbosity=2)
