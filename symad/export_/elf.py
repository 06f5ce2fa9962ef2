"""Just enough ELF reading for export: the machine of an object and its undefined symbols."""
from __future__ import annotations

import struct

#: e_machine values of the targets export is tested on.
EM_NAMES = {3: "x86", 40: "arm", 62: "x86-64", 183: "aarch64", 243: "riscv"}


def e_machine(obj: bytes) -> int:
    """The ELF header's e_machine field (62 x86-64, 183 aarch64, 243 riscv)."""
    if obj[:4] != b"\x7fELF":
        raise ValueError("not an ELF object")
    return struct.unpack_from("<H" if obj[5] == 1 else ">H", obj, 18)[0]


def undefined_symbols(obj: bytes) -> list[str]:
    """Names the object needs from elsewhere (libm, libmvec, ...), sorted; [] if not ELF."""
    if obj[:4] != b"\x7fELF":
        return []
    is64, end = obj[4] == 2, "<" if obj[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", obj, 0x28)
        shentsize, shnum = struct.unpack_from(end + "HH", obj, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", obj, 0x20)
        shentsize, shnum = struct.unpack_from(end + "HH", obj, 0x2E)
    sections = []
    for k in range(shnum):
        base = shoff + k * shentsize
        if is64:
            _, sh_type, _, _, off, size, link, _, _, entsize = struct.unpack_from(
                end + "IIQQQQIIQQ", obj, base)
        else:
            _, sh_type, _, _, off, size, link, _, _, entsize = struct.unpack_from(
                end + "IIIIIIIIII", obj, base)
        sections.append((sh_type, off, size, link, entsize))
    names = set()
    for sh_type, off, size, link, entsize in sections:
        if sh_type != 2:  # SHT_SYMTAB
            continue
        str_off = sections[link][1]
        for s in range(off + entsize, off + size, entsize):  # entry 0 is the null symbol
            if is64:
                st_name, _, _, st_shndx = struct.unpack_from(end + "IBBH", obj, s)
            else:
                st_name, = struct.unpack_from(end + "I", obj, s)
                st_shndx, = struct.unpack_from(end + "H", obj, s + 14)
            if st_shndx == 0 and st_name:
                stop = obj.index(b"\0", str_off + st_name)
                names.add(obj[str_off + st_name:stop].decode())
    return sorted(names)
