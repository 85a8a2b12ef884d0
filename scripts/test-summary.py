#!/usr/bin/env python3
# Prints the plain closing line "N passed, N failed" summed over every result source given,
# as the last line of its output, and exits 1 if anything failed.
#
# Each argument is one source:
#  - a meson log directory (or its testlog.json, or a testlog-NAME.json written with
#    `meson test --logbase testlog-NAME`): individual cases are counted from meson's JUnit
#    report (testlog.junit.xml, testlog-NAME.junit.xml), which holds every gtest case and
#    TAP line. A test
#    with no cases there counts as one case by its result in testlog.json, and a test that
#    failed, timed out or crashed without a failing case counts as one more failure.
#  - any other .json file: JSON lines {"name": ..., "result": "OK"|"FAIL"|"SKIP"|...}, one
#    case each (fuzz runs, the sanitizer-report check, stages that could not run).
# A missing or empty source counts as one failure (its stage never produced results).
# Prefix a source with "LABEL=" to name it in FAILED lines (e.g. asan=build-asan/meson-logs).
# Without arguments: build/meson-logs.
import json
import os
import sys
import xml.etree.ElementTree as ET

OK_RESULTS = ("OK", "EXPECTEDFAIL")


def junit_cases(junit):
    cases = {}  # meson test name -> [passed, failed, skipped]
    if not os.path.exists(junit):
        return cases
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
    return cases


def count(path, with_junit):
    """Returns ([passed, failed, skipped], [failed test descriptions]) for one source."""
    cases = junit_cases(path[:-len(".json")] + ".junit.xml") if with_junit else {}
    total = [0, 0, 0]
    bad = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            name, result = t.get("name", "?"), t.get("result", "")
            c = None
            for k, v in cases.items():
                if k == name or k.startswith(name + "."):
                    c = [a + b for a, b in zip(c or [0, 0, 0], v)]
            if c is None or sum(c) == 0:
                c = ([1, 0, 0] if result in OK_RESULTS else
                     [0, 0, 1] if result == "SKIP" else [0, 1, 0])
            if result not in OK_RESULTS + ("SKIP",) and c[1] == 0:
                c[1] = 1
            if c[1]:
                bad.append(f"{name} ({result})")
            total = [a + b for a, b in zip(total, c)]
    return total, bad


def main(sources):
    passed = failed = skipped = 0
    bad = []
    for src in sources:
        label, _, path = src.rpartition("=") if "=" in src else ("", "", src)
        prefix = f"{label}: " if label else ""
        with_junit = True
        if os.path.isdir(path):
            path = os.path.join(path, "testlog.json")
        elif not (os.path.basename(path).startswith("testlog") and path.endswith(".json")):
            with_junit = False
        if not os.path.exists(path):
            bad.append(f"{prefix}{path} (no results)")
            failed += 1
            continue
        (p, f, s), b = count(path, with_junit)
        if p + f + s == 0:
            b, f = [f"{path} (no results)"], 1
        passed, failed, skipped = passed + p, failed + f, skipped + s
        bad += [prefix + x for x in b]
    for b in bad:
        print(f"FAILED: {b}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["build/meson-logs"]))
