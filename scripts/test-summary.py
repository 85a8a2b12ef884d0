#!/usr/bin/env python3
# Reads meson's testlog.json and prints the plain closing line "N passed, N failed",
# counting individual cases: gtest cases ([ OK ] / [ FAILED ] lines), TAP lines
# (ok / not ok) for script tests, and one case for any other test. A test that failed,
# timed out or crashed without reporting a failed case counts as one more failure.
import json
import re
import sys

GTEST_OK = re.compile(r"^\[\s+OK \] (\S+)", re.M)
GTEST_FAIL = re.compile(r"^\[\s+FAILED\s+\] (\S+\.\S+)", re.M)
GTEST_SKIP = re.compile(r"^\[\s+SKIPPED \] (\S+\.\S+)", re.M)
TAP_OK = re.compile(r"^ok \d+", re.M)
TAP_NOT_OK = re.compile(r"^not ok \d+", re.M)
TAP_SKIP = re.compile(r"^ok \d+[^\n]*# SKIP", re.M | re.I)


def main(path):
    passed = failed = skipped = 0
    bad = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            t = json.loads(line)
            out = t.get("stdo", "") or ""
            result = t.get("result", "")
            name = t.get("name", "?")
            ok_cases = GTEST_OK.findall(out)
            fail_cases = set(GTEST_FAIL.findall(out))
            skip_cases = set(GTEST_SKIP.findall(out))
            tap_skip = len(TAP_SKIP.findall(out))
            tap_ok = len(TAP_OK.findall(out)) - tap_skip
            tap_fail = len(TAP_NOT_OK.findall(out))
            if ok_cases or fail_cases or skip_cases:
                p, fl, s = len(ok_cases), len(fail_cases), len(skip_cases)
            elif tap_ok or tap_fail or tap_skip:
                p, fl, s = tap_ok, tap_fail, tap_skip
            else:
                p, fl, s = (1, 0, 0) if result in ("OK", "EXPECTEDFAIL") else (0, 0, 1) if result == "SKIP" else (0, 1, 0)
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and fl == 0:
                fl = 1
            if fl:
                bad.append(f"{name} ({result})")
            passed += p
            failed += fl
            skipped += s
    for b in bad:
        print(f"FAILED: {b}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/meson-logs/testlog.json"))
