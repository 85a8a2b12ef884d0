#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Tests for scripts/test-summary.py, run as a script on result files made here: a source
# with failing, missing or no results must count as a failure and make it exit 1.
import json
import os
import subprocess
import sys
import tempfile
import unittest

SUMMARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                       "test-summary.py")


def summarize(*sources):
    """(exit status, closing line) of test-summary.py over \p sources."""
    p = subprocess.run([sys.executable, SUMMARY, *sources], capture_output=True, text=True)
    return p.returncode, p.stdout.strip().splitlines()[-1]


class TestSummary(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def results(self, name, *rows):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        return path

    def test_passing_results(self):
        path = self.results("ok.json", {"name": "a", "result": "OK"},
                            {"name": "b", "result": "SKIP"})
        self.assertEqual(summarize(path), (0, "1 passed, 0 failed, 1 skipped"))

    def test_failing_result(self):
        path = self.results("fail.json", {"name": "a", "result": "OK"},
                            {"name": "b", "result": "FAIL"})
        self.assertEqual(summarize(path), (1, "1 passed, 1 failed"))

    def test_missing_source(self):
        ok = self.results("ok.json", {"name": "a", "result": "OK"})
        self.assertEqual(summarize(ok, os.path.join(self.dir, "absent.json")),
                         (1, "1 passed, 1 failed"))

    def test_empty_source(self):
        # A stage that truncated its results file and then died recorded nothing.
        ok = self.results("ok.json", {"name": "a", "result": "OK"})
        empty = self.results("empty.json")
        self.assertEqual(summarize(ok, empty), (1, "1 passed, 1 failed"))

    def test_meson_log_dir_without_junit(self):
        os.mkdir(os.path.join(self.dir, "meson-logs"))
        self.results("meson-logs/testlog.json", {"name": "t", "result": "TIMEOUT"})
        self.assertEqual(summarize(os.path.join(self.dir, "meson-logs")), (1, "0 passed, 1 failed"))

    def test_named_meson_log_counts_its_own_junit_cases(self):
        # `meson test --logbase testlog-timing` writes testlog-timing.{json,junit.xml}; its
        # cases come from its own JUnit report, not from testlog.junit.xml.
        os.mkdir(os.path.join(self.dir, "meson-logs"))
        self.results("meson-logs/testlog.json", {"name": "u", "result": "OK"})
        named = self.results("meson-logs/testlog-timing.json", {"name": "t", "result": "FAIL"})
        junit = ('<testsuites><testsuite name="vdhost.t">'
                 '<testcase name="a"/><testcase name="b"/>'
                 '<testcase name="c"><failure/></testcase></testsuite></testsuites>')
        with open(os.path.join(self.dir, "meson-logs", "testlog-timing.junit.xml"), "w") as f:
            f.write(junit)
        self.assertEqual(summarize(os.path.join(self.dir, "meson-logs"), named),
                         (1, "3 passed, 1 failed"))


if __name__ == "__main__":
    unittest.main()
