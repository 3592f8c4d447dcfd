"""A strict reader of the parts of an ELF64 relocatable object that decide what it links to.

Loading an object with MCJIT resolves every undefined symbol against the runtime's registered
symbols and then the whole process (libc's `system` included), and applies every relocation
it names. `ElfObject` lists the sections, the undefined symbols of every symbol table and the
relocation types, so the loader can vet them first. Anything malformed (out-of-bounds
tables, odd entry sizes, extended section numbering) raises `ElfError` rather than being
interpreted differently from LLVM's own reader.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")

ET_REL = 1
SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL, SHT_DYNSYM = 2, 3, 4, 8, 9, 11
SHN_UNDEF = 0
STB_GLOBAL, STB_WEAK = 1, 2
SHN_LORESERVE = 0xFF00


class ElfError(ValueError):
    """The bytes are not a well-formed little-endian ELF64 relocatable object."""


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    offset: int
    size: int
    link: int
    entsize: int


class ElfObject:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        if len(data) < _EHDR.size:
            raise ElfError(f"{len(data)} bytes is shorter than an ELF header")
        (ident, self.type, self.machine, _version, _entry, _phoff, shoff, _flags, ehsize, _phentsize, phnum,
         shentsize, shnum, shstrndx) = _EHDR.unpack_from(data)
        if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
            raise ElfError("not a little-endian ELF64 file")
        if self.type != ET_REL or phnum != 0:
            raise ElfError(f"not a relocatable object (type {self.type}, {phnum} program headers)")
        if ehsize != _EHDR.size or shentsize != _SHDR.size or shnum == 0 or shstrndx >= shnum:
            raise ElfError("unexpected header sizes or extended section numbering")
        self._check_range(shoff, shnum * _SHDR.size, "section header table")
        raw = [_SHDR.unpack_from(data, shoff + i * _SHDR.size) for i in range(shnum)]
        for i, (_, sh_type, _, _, off, size, *_rest) in enumerate(raw):
            if sh_type != SHT_NOBITS and i:  # occupies no file bytes; section 0 is the null entry
                self._check_range(off, size, f"section {i}")
        names = self._table(raw[shstrndx][4], raw[shstrndx][5])
        self.sections = [Section(_string(names, r[0]), r[1], r[4], r[5], r[6], r[9]) for r in raw]

    def undefined_symbols(self) -> set[str]:
        """Names of the undefined symbols of every symbol table (what the loader must resolve)."""
        return {name for name, _, shndx in self._all_symbols() if shndx == SHN_UNDEF and name}

    def global_definitions(self) -> list[str]:
        """Names of the global and weak symbols the object defines (what other objects may import)."""
        return [name for name, info, shndx in self._all_symbols()
                if shndx != SHN_UNDEF and name and info >> 4 in (STB_GLOBAL, STB_WEAK)]

    def has_symbol_type(self, kind: int) -> bool:
        return any(info & 0xF == kind for _, info, _ in self._all_symbols())

    def _all_symbols(self):
        for sec in self.sections:
            if sec.type in (SHT_SYMTAB, SHT_DYNSYM):
                yield from self._symbols(sec)

    def relocation_types(self) -> set[int]:
        """Every relocation type used (the object must use RELA sections only: SHT_REL raises)."""
        types = set()
        for sec in self.sections:
            if sec.type == SHT_REL:
                raise ElfError(f"section '{sec.name}' holds REL relocations (x86-64 objects use RELA)")
            if sec.type != SHT_RELA:
                continue
            if sec.entsize != _RELA.size or sec.size % _RELA.size:
                raise ElfError(f"relocation section '{sec.name}' has entries of {sec.entsize} bytes")
            symtab = self._linked(sec, SHT_SYMTAB)
            count = symtab.size // _SYM.size
            for _, info, _ in _RELA.iter_unpack(self.data[sec.offset:sec.offset + sec.size]):
                if info >> 32 >= count:
                    raise ElfError(f"relocation in '{sec.name}' names symbol {info >> 32} of {count}")
                types.add(info & 0xFFFFFFFF)
        return types

    def _symbols(self, sec: Section):
        if sec.entsize != _SYM.size or sec.size % _SYM.size:
            raise ElfError(f"symbol table '{sec.name}' has entries of {sec.entsize} bytes")
        strtab = self._linked(sec, SHT_STRTAB)
        names = self._table(strtab.offset, strtab.size)
        for st_name, info, _other, shndx, _value, _size in _SYM.iter_unpack(
                self.data[sec.offset:sec.offset + sec.size]):
            if SHN_LORESERVE <= shndx < 0xFFF1 or shndx == 0xFFFF:  # processor/OS specific, SHN_XINDEX
                raise ElfError(f"symbol table '{sec.name}' uses reserved section index {shndx:#x}")
            yield _string(names, st_name), info, shndx

    def _linked(self, sec: Section, kind: int) -> Section:
        if not 0 < sec.link < len(self.sections) or self.sections[sec.link].type != kind:
            raise ElfError(f"section '{sec.name}' links to section {sec.link}, which is not of type {kind}")
        return self.sections[sec.link]

    def _table(self, offset: int, size: int) -> bytes:
        self._check_range(offset, size, "string table")
        return bytes(self.data[offset:offset + size])

    def _check_range(self, offset: int, size: int, what: str) -> None:
        if offset + size > len(self.data):
            raise ElfError(f"{what} at {offset}+{size} lies outside the {len(self.data)}-byte object")


def _string(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        raise ElfError(f"string offset {offset} lies outside its table")
    return table[offset:end].decode("utf-8", "replace")
