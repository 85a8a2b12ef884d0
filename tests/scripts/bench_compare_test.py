#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Tests for scripts/bench-compare.py, run as a script on result files made here in the
# shape scripts/bench.sh writes (latest.json's summary): ratios within the threshold pass,
# one beyond it, one missing from a file, or an unreadable file fail.
import json
import os
import subprocess
import sys
import tempfile
import unittest

COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                       "bench-compare.py")


def entry(workload, qd, ratio, cpu_ratio, spread=0.1, peer="virtiofsd"):
    """One summary entry as bench.sh writes it (only the keys the comparison reads)."""
    return {
        "workload": workload, "queue_depth": qd, "vdhost": {"ops_s": 1000.0},
        "ratio_" + peer: ratio, "ratio_" + peer + "_spread": [ratio - spread, ratio + spread],
        "cpu_ratio_" + peer: cpu_ratio,
        "cpu_ratio_" + peer + "_spread": [cpu_ratio - spread / 10, cpu_ratio + spread / 10],
        "ratio_raw": None,
    }


class BenchCompare(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def result(self, name, summary, load=("1.00 1.00 1.00", "2.00 1.50 1.00")):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            json.dump({"summary": summary, "load_average": {"start": load[0], "end": load[1]},
                       "cpu_wait_pct": {"vdhost": {"median": 0.6, "max": 7.0},
                                        "virtiofsd": None}}, f)
        return path

    def compare(self, *args):
        p = subprocess.run([sys.executable, COMPARE, *args], capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    def row(self, out, workload, qd, name):
        """The output line of one ratio, split into words."""
        for line in out.splitlines():
            words = line.split()
            if words[:3] == [workload, str(qd), name]:
                return words
        self.fail(f"no line for {workload} {qd} {name} in:\n{out}")

    def test_within_threshold(self):
        a = self.result("a.json", [entry("getattr", 1, 2.00, 0.50),
                                   entry("getattr", 32, 1.40, 0.90)])
        b = self.result("b.json", [entry("getattr", 1, 2.10, 0.52),
                                   entry("getattr", 32, 1.35, 0.88)])
        rc, out, _ = self.compare(a, b)
        self.assertEqual(rc, 0, out)
        # 2.10 / 2.00 - 1 = 5.0%; spreads [1.9-2.1] and [2.0-2.2] overlap.
        words = self.row(out, "getattr", 1, "ratio_virtiofsd")
        self.assertEqual(words[-2:], ["5.0%", "yes"])
        self.assertIn("4 ratios compared, 0 differ by more than 10%", out)
        self.assertIn("load average 1.00 1.00 1.00 at the start", out)
        self.assertIn("waiting for a CPU (median): vdhost 0.6%\n", out)
        self.assertIn("by ratio: ratio_virtiofsd 0/2, cpu_ratio_virtiofsd 0/2", out)

    def test_difference_is_symmetric(self):
        a = self.result("a.json", [entry("getattr", 1, 4.06, 0.5)])
        b = self.result("b.json", [entry("getattr", 1, 0.94, 0.5)])
        rc_ab, out_ab, _ = self.compare(a, b)
        rc_ba, out_ba, _ = self.compare(b, a)
        self.assertEqual((rc_ab, rc_ba), (1, 1))
        # 4.06 / 0.94 - 1 = 331.9% either way; spreads [3.96-4.16] and [0.84-1.04] do not meet.
        for out in (out_ab, out_ba):
            self.assertEqual(self.row(out, "getattr", 1, "ratio_virtiofsd")[-3:],
                             ["331.9%", "no", "ABOVE"])
            self.assertIn("1 differ by more than 10%; largest difference 331.9% "
                          "(getattr QD1 ratio_virtiofsd)", out)

    def test_cpu_ratio_beyond_threshold_fails(self):
        a = self.result("a.json", [entry("read-4k-rand", 32, 1.10, 0.30)])
        b = self.result("b.json", [entry("read-4k-rand", 32, 1.10, 0.36)])
        rc, out, _ = self.compare(a, b)
        self.assertEqual(rc, 1, out)
        # 0.36 / 0.30 - 1 = 20%; spreads [0.29-0.31] and [0.35-0.37] do not meet.
        self.assertEqual(self.row(out, "read-4k-rand", 32, "cpu_ratio_virtiofsd")[-3:],
                         ["20.0%", "no", "ABOVE"])
        self.assertEqual(self.row(out, "read-4k-rand", 32, "ratio_virtiofsd")[-2:], ["0.0%", "yes"])
        self.assertIn("by ratio: ratio_virtiofsd 0/1, cpu_ratio_virtiofsd 1/1", out)

    def test_threshold_option(self):
        a = self.result("a.json", [entry("getattr", 1, 2.00, 0.50)])
        b = self.result("b.json", [entry("getattr", 1, 2.30, 0.50)])
        self.assertEqual(self.compare(a, b)[0], 1)
        self.assertEqual(self.compare("--threshold", "0.2", a, b)[0], 0)
        self.assertEqual(self.compare("--threshold", "-1", a, b)[0], 2)

    def test_only_selects_ratios(self):
        a = self.result("a.json", [entry("getattr", 1, 2.00, 0.50)])
        b = self.result("b.json", [entry("getattr", 1, 3.00, 0.50)])
        rc, out, _ = self.compare("--only", "cpu_ratio_*", a, b)
        self.assertEqual(rc, 0, out)
        self.assertNotIn(" ratio_virtiofsd ", out)
        self.assertIn("1 ratios compared", out)

    def test_ratio_in_one_file_only_fails(self):
        a = self.result("a.json", [entry("getattr", 1, 2.0, 0.5),
                                   entry("getattr", 1, 1.5, 0.6, peer="rust-virtiofsd")])
        b = self.result("b.json", [entry("getattr", 1, 2.0, 0.5)])
        rc, out, _ = self.compare(a, b)
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.row(out, "getattr", 1, "ratio_rust-virtiofsd")[-3:],
                         ["only", "in", "A"])
        self.assertIn("2 in one file only", out)

    def test_missing_spread_and_null_ratio(self):
        # Results from before the spreads existed: a ratio with no _spread; a null ratio
        # (a peer that did not run) is not a ratio.
        a = self.result("a.json", [{"workload": "getattr", "queue_depth": 1,
                                    "ratio_virtiofsd": 2.0, "ratio_raw": None}])
        b = self.result("b.json", [entry("getattr", 1, 2.0, 0.5)])
        rc, out, _ = self.compare("--only", "ratio_virtiofsd", a, b)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.row(out, "getattr", 1, "ratio_virtiofsd")[-2:], ["0.0%", "-"])
        self.assertNotIn("ratio_raw", out)

    def test_unreadable_inputs(self):
        good = self.result("a.json", [entry("getattr", 1, 2.0, 0.5)])
        self.assertEqual(self.compare(good, os.path.join(self.tmp.name, "absent.json"))[0], 2)
        bad = os.path.join(self.tmp.name, "bad.json")
        with open(bad, "w") as f:
            f.write("{not json")
        self.assertEqual(self.compare(good, bad)[0], 2)
        no_summary = self.result("c.json", None)
        rc, _, err = self.compare(good, no_summary)
        self.assertEqual(rc, 2)
        self.assertIn("no 'summary' list", err)
        empty = self.result("d.json", [])
        self.assertEqual(self.compare(empty, empty)[0], 2)


if __name__ == "__main__":
    unittest.main()
