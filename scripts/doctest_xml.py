#!/usr/bin/env python3
"""Reads a doctest XML report (hwyconv_tests -r=xml --out=FILE), for scripts/test-arm.sh.

Usage:
  doctest_xml.py summary FILE       one line: "CASES|PASSED|FAILED|targets tested: A B; failed checks
                                    per target; failed test cases"
  doctest_xml.py failures FILE [N]  the first N (default 20) failed checks, one a line, with their
                                    test case and subcase path

The per-target tests run each target as a SUBCASE named after it (tests/test_util.hpp,
for_each_target), so the subcase names are the Highway targets that were tested. A report cut short
(the program crashed) is reported as such. Only the standard library is used.
"""

import sys
import xml.etree.ElementTree as ET

# Highway 1.0.3's target names (hwy::TargetName): the subcases of the per-target tests. Other tests
# have subcases of their own, which are not targets.
TARGETS = {"AVX3_DL", "AVX3", "AVX2", "SSE4", "SSSE3", "EMU128", "SCALAR", "NEON", "SVE", "SVE2",
           "SVE_256", "SVE2_128", "RVV", "WASM", "WASM_EMU256", "PPC8"}


def load(path):
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        return e


def summary(root):
    if isinstance(root, Exception):
        return f"no complete report ({type(root).__name__}: crashed?)|0|1|"
    targets, fails, failed_cases = [], {}, []

    def walk(node, sub):
        for ch in node:
            if ch.tag == "SubCase":
                name = ch.get("name")
                if name in TARGETS:
                    if name not in targets:
                        targets.append(name)
                    walk(ch, name)
                else:
                    walk(ch, sub)
            elif ch.tag in ("Expression", "Exception") and ch.get("success", "false") == "false":
                fails[sub or "-"] = fails.get(sub or "-", 0) + 1
            else:
                walk(ch, sub)

    walk(root, None)
    for tc in root.iter("TestCase"):
        res = tc.find("OverallResultsAsserts")
        if res is not None and res.get("test_case_success") == "false":
            failed_cases.append(tc.get("name"))
    cases = root.find(".//OverallResultsTestCases")
    if cases is None:
        return "no test case totals|0|1|"
    ok, bad = int(cases.get("successes", 0)), int(cases.get("failures", 0))
    skipped = int(cases.get("skipped", 0))
    text = f"{ok}/{ok + bad} test cases" + (f" ({skipped} filtered out)" if skipped else "")
    detail = f"targets tested: {' '.join(targets) or 'none'}"
    if fails:
        detail += "; failed checks: " + ", ".join(f"{k} {v}" for k, v in fails.items())
    if failed_cases:
        detail += "; failed test cases: " + " / ".join(failed_cases)
    return f"{text}|{ok}|{bad}|{detail}"


def failures(root):
    if isinstance(root, Exception):
        return [f"report unreadable: {root}"]
    out = []

    def walk(node, path):
        for ch in node:
            if ch.tag in ("TestCase", "SubCase"):
                walk(ch, path + [ch.get("name")])
            elif ch.tag in ("Expression", "Exception") and ch.get("success", "false") == "false":
                exp = " ".join((ch.findtext("Expanded") or ch.text or "").split())
                info = " | ".join(" ".join((i.text or "").split()) for i in ch.findall("Info"))
                out.append(f"FAIL [{' / '.join(path)}] {exp}: {info}")
            else:
                walk(ch, path)

    walk(root, [])
    return out


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in ("summary", "failures"):
        print(__doc__)
        return 2
    root = load(sys.argv[2])
    if sys.argv[1] == "summary":
        print(summary(root))
    else:
        limit = int(sys.argv[3]) if len(sys.argv) == 4 else 20
        lines = failures(root)
        for line in lines[:limit]:
            print(line[:300])
        if len(lines) > limit:
            print(f"... {len(lines) - limit} more failed checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
