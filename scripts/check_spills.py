#!/usr/bin/env python3
"""Checks that the microkernels keep their accumulators in registers.

Disassembles an object file (objdump -d), finds every microkernel function (FwdMicrokernel,
BwdWMicrokernel, and the depthwise DwRowMicrokernel with its DwPixels and DwSlidePixels blocks) of
every Highway target, and in each innermost loop (a natural loop, from a backward branch to a block
that dominates it, with no other loop inside) looks for vector instructions that read or write the
stack: a register spill in the hot loop (a store to a slot nothing reads is not one: dead_store; nor
is a 64-bit vmovq of a general-register value). Prints one line per
kernel and target; exits 1 if any hot loop spills. The scalar fallback (SCALAR, EMU128) is reported
but not failed.

The architecture comes from the object's ELF header:
  x86-64   objdump; stack = (%rsp) or (%rbp) where %rbp is the frame pointer; vector = %xmm/%ymm/%zmm;
           branches = j*
  aarch64  aarch64-linux-gnu-objdump (else objdump); stack = [sp...] or [x29...] where x29 is the
           frame pointer; vector/FP = b/h/s/d/q/v/z registers and SVE predicates p (ldr/str/ldp/stp,
           ld1/st1, ldr z/str z, ...); branches = b, b.<cond>, cbz/cbnz, tbz/tbnz

Usage: check_spills.py OBJECT [--verbose] [--objdump PATH]
  --objdump PATH  the objdump to use (ctest passes CMake's CMAKE_OBJDUMP)
"""
import os
import re
import shutil
import subprocess
import sys

KERNEL = re.compile(r"^([0-9a-f]+) <(.*(?:FwdMicrokernel|BwdWMicrokernel|DwRowMicrokernel|DwSlidePixels|DwPixels).*)>:$")
FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
# A branch's target: "<hex address> <symbol+offset>" (x86: "jne 1a <f+0x1a>", aarch64:
# "b.ne 1a <f+0x1a>", "cbnz x1, 1a <...>", "tbz w0, #3, 1a <...>").
TARGET = re.compile(r"(?:^|[\s,])([0-9a-f]+) <")


class Arch:
    """An architecture's branches, and what a stack access by a vector instruction looks like."""

    def __init__(self, name, objdumps, branch, always, end, indirect, vector, stack, frame_reg,
                 frame_setup):
        self.name = name
        self.objdumps = objdumps        # objdump binaries to try, in order
        self.branch = branch            # mnemonics of jumps (not calls), conditional or not
        self.always = always            # unconditional jumps: no fall-through
        self.end = end                  # returns, traps, indirect jumps: no successor known
        self.indirect = indirect        # (mnemonic, operands) of an indirect jump
        self.vector = vector            # a vector/FP register in the operands
        self.stack = stack              # stack-pointer addressing
        self.frame_reg = frame_reg      # frame-pointer addressing
        self.frame_setup = frame_setup  # (mnemonic, operands) that make the frame pointer one


X86_64 = Arch(
    "x86-64", ["objdump"],
    branch=re.compile(r"^j[a-z]+$"),
    always=re.compile(r"^jmpq?$"),
    end=re.compile(r"^(?:ret[a-z]*|ud2|hlt)$"),
    indirect=lambda op, args: op.startswith("jmp") and args.startswith("*"),
    vector=re.compile(r"%[xyz]mm\d+"),
    stack=re.compile(r"\(%rsp\)"),
    frame_reg=re.compile(r"\(%rbp\)"),
    # %rbp addresses the stack only where the function made it a frame pointer; otherwise it is an
    # ordinary register (a data pointer).
    frame_setup=lambda op, args: op == "mov" and args.startswith("%rsp,%rbp"))

AARCH64 = Arch(
    "aarch64", ["aarch64-linux-gnu-objdump", "objdump"],
    # b, b.<cond> (b.ne, b.lt, ...; objdump notes SVE's b.any/b.none/... as comments), cbz/cbnz,
    # tbz/tbnz; not bl/blr (calls).
    branch=re.compile(r"^(?:b|b\.[a-z]+|cbn?z|tbn?z)$"),
    always=re.compile(r"^b$"),
    end=re.compile(r"^(?:ret[a-z]*|br[a-z]*|eret|udf|hlt)$"),
    indirect=lambda op, args: op.startswith("br") and op != "brk",
    # q0, d1, s2, h3, b4, v5(.4s), z6(.s), and p7 (an SVE predicate: its spill is one too). Not
    # after a letter, digit, '#' or '.' (x/w registers, sp, immediates, arrangements like v0.4s).
    vector=re.compile(r"(?<![\w#.])[bhsdqvzp]\d{1,2}(?:\.\w+|/[zm])?(?!\w)"),
    stack=re.compile(r"\[sp[,\]]"),
    frame_reg=re.compile(r"\[x29[,\]]"),
    # x29 addresses the stack where the function set it up as the frame pointer ("mov x29, sp" or
    # "add x29, sp, #n"); with -fomit-frame-pointer it may be an ordinary register.
    frame_setup=lambda op, args: op in ("mov", "add") and args.replace(" ", "").startswith("x29,sp"))

# ELF e_machine values.
MACHINES = {62: X86_64, 183: AARCH64}


def elf_arch(path):
    """The Arch of an ELF object, from its header; None when it is neither x86-64 nor aarch64."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return MACHINES.get(int.from_bytes(head[18:20], order))


def format_arch(lines):
    """Fallback: the Arch from objdump's "file format" line (elf64-x86-64, elf64-littleaarch64)."""
    for line in lines[:5]:
        if "file format" in line:
            if "aarch64" in line:
                return AARCH64
            if "x86-64" in line:
                return X86_64
    return None


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


def blocks_and_edges(body, arch):
    """Basic blocks of a function ([first, last] instruction indices), their successors, and the
    direct jumps ({instruction index: target instruction index})."""
    index = {addr: i for i, (addr, _, _) in enumerate(body)}
    target = {}
    leaders = {0}
    for i, (addr, op, args) in enumerate(body):
        if arch.branch.match(op) or arch.end.match(op):
            leaders.add(i + 1)
            t = TARGET.search(args) if arch.branch.match(op) else None
            if t and int(t.group(1), 16) in index:
                target[i] = index[int(t.group(1), 16)]
                leaders.add(target[i])
    starts = sorted(l for l in leaders if l < len(body))
    blocks = [(s, e - 1) for s, e in zip(starts, starts[1:] + [len(body)])]
    block_of = {s: b for b, (s, _) in enumerate(blocks)}
    succs = []
    for b, (_, last) in enumerate(blocks):
        op, args = body[last][1:]
        out = []
        if last in target:
            out.append(block_of[target[last]])
        ends = arch.end.match(op) or arch.always.match(op) or arch.indirect(op, args)
        if not ends and b + 1 < len(blocks):
            out.append(b + 1)  # falls through
        succs.append(out)
    return blocks, succs, target


def dominators(succs):
    """Immediate dominators (Cooper, Harvey, Kennedy) of the blocks reachable from block 0."""
    order, seen, stack = [], {0}, [(0, iter(succs[0]))]
    while stack:  # reverse postorder, iteratively
        b, it = stack[-1]
        for s in it:
            if s not in seen:
                seen.add(s)
                stack.append((s, iter(succs[s])))
                break
        else:
            order.append(b)
            stack.pop()
    order.reverse()
    rpo = {b: i for i, b in enumerate(order)}
    preds = {b: [] for b in order}
    for b in order:
        for s in succs[b]:
            preds[s].append(b)
    idom = {0: 0}
    changed = True
    while changed:
        changed = False
        for b in order[1:]:
            new = None
            for p in preds[b]:
                if p not in idom:
                    continue
                if new is None:
                    new = p
                    continue
                x, y = p, new
                while x != y:
                    while rpo[x] > rpo[y]:
                        x = idom[x]
                    while rpo[y] > rpo[x]:
                        y = idom[y]
                new = x
            if idom.get(b) != new:
                idom[b] = new
                changed = True
    return idom


def innermost_loops(body, arch):
    """Instruction index sets of the natural loops that contain no other loop.

    A loop is a backward branch to a block that dominates it (a back edge); its body is the blocks
    that reach the branch without passing through the loop's header. A backward jump that is no
    back edge (an out-of-line block jumping back to a shared epilogue, as gcc lays out aarch64
    code) is no loop. Back edges to one header make one loop.
    """
    blocks, succs, target = blocks_and_edges(body, arch)
    if any(arch.indirect(op, args) for _, op, args in body):
        # Successors unknown: address ranges instead (a backward jump with no other one inside).
        ranges = [(t, i) for i, t in target.items() if t <= i]
        ranges = [r for r in ranges if not any(o != r and r[0] <= o[0] and o[1] <= r[1] for o in ranges)]
        return [set(range(lo, hi + 1)) for lo, hi in ranges]
    idom = dominators(succs)
    preds = {b: [] for b in idom}
    for b in idom:
        for s in succs[b]:
            preds[s].append(b)
    loops = {}
    for u in idom:
        for h in succs[u]:
            d = u
            while d != h and idom[d] != d:
                d = idom[d]
            if d != h:
                continue  # h does not dominate u: no back edge
            body_blocks = loops.setdefault(h, {h})
            work = [u]
            while work:
                b = work.pop()
                if b not in body_blocks:
                    body_blocks.add(b)
                    work.extend(preds[b])
    innermost = [bs for h, bs in loops.items() if not any(o != h and o in bs for o in loops)]
    return [{i for b in bs for i in range(blocks[b][0], blocks[b][1] + 1)} for bs in innermost]


def dead_store(body, i, arch):
    """Whether instruction i (x86) is a store to a stack slot that no instruction of the function
    reads: gcc 12 sometimes keeps such a dead copy of a vector held by an empty asm constraint. It
    costs one store and is no spill (nothing is reloaded), so it is not reported."""
    if arch.name != "x86-64":
        return False
    ops = body[i][2].split(" <", 1)[0]
    parts = ops.rsplit(",", 1)
    if len(parts) != 2 or not arch.stack.search(parts[1]) or not body[i][1].startswith("vmov"):
        return False
    slot = parts[1].strip()
    used = re.compile(r"(?:^|[\s,])" + re.escape(slot) + r"(?=,|$)")
    for j, (_, _, args) in enumerate(body):
        if j == i:
            continue
        a = args.split(" <", 1)[0].strip()
        if used.search(a) and not a.endswith("," + slot):
            return False  # read (an operand other than the destination)
    return True


def disassemble(path, objdump):
    r = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{objdump} -d {path} failed (exit {r.returncode}): {r.stderr.strip()[:500]}")
    return r.stdout.splitlines()


def main():
    args = sys.argv[1:]
    verbose = "--verbose" in args
    objdump = None
    if "--objdump" in args:
        i = args.index("--objdump")
        if i + 1 >= len(args):
            print("--objdump needs a path")
            return 2
        objdump = args[i + 1]
        del args[i:i + 2]
    args = [a for a in args if a != "--verbose"]
    if len(args) != 1:
        print(__doc__)
        return 2
    path = args[0]
    if not os.path.isfile(path):
        print(f"{path}: no such object (build the hwyconv_spill_probe target first)")
        return 2

    arch = elf_arch(path)
    if objdump is None:
        candidates = arch.objdumps if arch else ["objdump"]
        objdump = next((c for c in candidates if shutil.which(c)), candidates[-1])
    try:
        out = disassemble(path, objdump)
    except (OSError, RuntimeError) as e:
        print(f"cannot disassemble {path}: {e}")
        return 2
    if arch is None:
        arch = format_arch(out)
    if arch is None:
        print(f"{path}: neither an x86-64 nor an aarch64 object (objdump: {' '.join(out[:3])})")
        return 2
    if verbose:
        print(f"{path}: {arch.name}, disassembled with {objdump}")

    bad = 0
    count = 0
    for name, body in functions(out):
        count += 1
        spills = []
        frame = any(arch.frame_setup(op, args) for _, op, args in body)
        hot = set().union(*innermost_loops(body, arch))
        for i in sorted(hot):
            addr, op, args = body[i]
            # The operands without the symbol of a branch or address ("<f+0x10>").
            ops = args.split(" <", 1)[0]
            stack = arch.stack.search(ops) or (frame and arch.frame_reg.search(ops))
            # vmovq moves 64 bits: a general-register value that gcc parks in a vector register
            # (integer pressure in an outer part of the kernel), never an accumulator.
            scalar = arch.name == "x86-64" and op in ("vmovq", "movq")
            if stack and arch.vector.search(ops) and not scalar and not dead_store(body, i, arch):
                spills.append(f"{addr:x}: {op} {args}")
        short = re.sub(r"\(hwyconv::.*", "", name).replace("void hwyconv::", "")
        if spills and ("N_SCALAR::" in short or "N_EMU128::" in short):
            # The portable fallback holds one float per "vector"; it is not register-blocked.
            print(f"note  {short}: stack accesses in a loop (scalar fallback, not checked)")
        elif spills:
            bad += 1
            print(f"SPILL {short}: " + "; ".join(spills[:4]))
        elif verbose:
            print(f"ok    {short}")
    print(f"{count} microkernels checked, {bad} with spills in an innermost loop")
    if count == 0:
        print("no microkernel found: wrong object file?")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
