#!/usr/bin/env python3
"""Checks that the microkernels keep their accumulators in registers.

Disassembles an object file (objdump -d), finds every microkernel function (FwdMicrokernel,
BwdWMicrokernel) of every Highway target, and in each innermost loop (a backward branch with no
other backward branch inside) looks for vector instructions that read or write the stack (%rsp or
%rbp): a register spill in the hot loop. Prints one line per kernel and target; exits 1 if any hot
loop spills. The scalar fallback (SCALAR, EMU128) is reported but not failed. Usage: check_spills.py OBJECT [--verbose]
"""
import re
import subprocess
import sys

KERNEL = re.compile(r"^([0-9a-f]+) <(.*(?:FwdMicrokernel|BwdWMicrokernel).*)>:$")
FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
BRANCH = re.compile(r"^j[a-z]+$")
VECTOR = re.compile(r"%[xyz]mm\d+")
RSP = re.compile(r"\(%rsp\)")
RBP = re.compile(r"\(%rbp\)")


def functions(lines):
    """Yields (name, [(addr, mnemonic, operands)]) for each kernel function."""
    name, body = None, []
    for line in lines:
        m = FUNC.match(line)
        if m:
            if name:
                yield name, body
            name = m.group(2) if KERNEL.match(line) else None
            body = []
            continue
        if name:
            i = INSN.match(line)
            if i:
                body.append((int(i.group(1), 16), i.group(2), i.group(3)))
    if name:
        yield name, body


def innermost_loops(body):
    """(start, end) address ranges of loops that contain no other loop."""
    loops = []
    for addr, op, args in body:
        if BRANCH.match(op):
            t = re.match(r"([0-9a-f]+)\s", args + " ")
            if t and int(t.group(1), 16) <= addr:
                loops.append((int(t.group(1), 16), addr))
    return [l for l in loops if not any(o != l and l[0] <= o[0] and o[1] <= l[1] for o in loops)]


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", sys.argv[1]],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    bad = 0
    count = 0
    for name, body in functions(out):
        count += 1
        spills = []
        # %rbp addresses the stack only where the function made it a frame pointer; otherwise it
        # is an ordinary register (a data pointer).
        frame = any(op == "mov" and args.startswith("%rsp,%rbp") for _, op, args in body)
        for lo, hi in innermost_loops(body):
            for addr, op, args in body:
                stack = RSP.search(args) or (frame and RBP.search(args))
                if lo <= addr <= hi and VECTOR.search(args) and stack:
                    spills.append(f"{addr:x}: {op} {args}")
        short = re.sub(r"\(hwyconv::.*", "", name).replace("void hwyconv::", "")
        if spills and ("N_SCALAR::" in short or "N_EMU128::" in short):
            # The portable fallback holds one float per "vector"; it is not register-blocked.
            print(f"note  {short}: stack accesses in a loop (scalar fallback, not checked)")
        elif spills:
            bad += 1
            print(f"SPILL {short}: " + "; ".join(spills[:4]))
        elif "--verbose" in sys.argv:
            print(f"ok    {short}")
    print(f"{count} microkernels checked, {bad} with spills in an innermost loop")
    if count == 0:
        print("no microkernel found: wrong object file?")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
