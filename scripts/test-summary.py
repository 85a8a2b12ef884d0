#!/usr/bin/env python3
# Prints the plain closing line "N passed, N failed" over all suites, counting individual
# cases: meson's JUnit report (testlog.junit.xml) holds every gtest case and TAP line. A
# test with no cases there counts as one case by its result in testlog.json, and a test
# that failed, timed out or crashed without a failing case counts as one more failure.
import json
import os
import sys
import xml.etree.ElementTree as ET


def main(logdir):
    cases = {}  # meson test name -> [passed, failed, skipped]
    junit = os.path.join(logdir, "testlog.junit.xml")
    if os.path.exists(junit):
        root = ET.parse(junit).getroot()
        for ts in root.iter("testsuite"):
            name = ts.attrib.get("name", "")
            # "<project>.<meson test name>[.<gtest suite>]"
            key = name.split(".", 1)[1] if "." in name else name  # drop "<project>."
            c = cases.setdefault(key, [0, 0, 0])
            for tc in ts.iter("testcase"):
                if tc.find("failure") is not None or tc.find("error") is not None:
                    c[1] += 1
                elif tc.find("skipped") is not None:
                    c[2] += 1
                else:
                    c[0] += 1
    passed = failed = skipped = 0
    bad = []
    seen = set()
    with open(os.path.join(logdir, "testlog.json")) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            name, result = t.get("name", "?"), t.get("result", "")
            c = None
            for k, v in cases.items():
                if k == name or k.startswith(name + "."):
                    c = [a + b for a, b in zip(c or [0, 0, 0], v)]
                    seen.add(k)
            if c is None or sum(c) == 0:
                c = [1, 0, 0] if result in ("OK", "EXPECTEDFAIL") else [0, 0, 1] if result == "SKIP" else [0, 1, 0]
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and c[1] == 0:
                c[1] = 1
            if c[1]:
                bad.append(f"{name} ({result})")
            passed, failed, skipped = passed + c[0], failed + c[1], skipped + c[2]
    for b in bad:
        print(f"FAILED: {b}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs"
    if d.endswith(".json"):
        d = os.path.dirname(d)
    sys.exit(main(d))
