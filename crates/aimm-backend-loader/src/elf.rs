//! What an ELF shared library exports, read from the file without loading
//! it.
//!
//! Loading runs the library's initialisers and needs every symbol it uses:
//! a shared library that is not a plugin (a Python extension beside the
//! CLI) fails there with the dynamic linker's noise about symbols it lacks.
//! Its dynamic symbol table says in a few words that it is not a plugin.
//! Only 64-bit little-endian ELF is read (Linux on x86_64 and aarch64);
//! anything else is left to the system loader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The section type of a dynamic symbol table.
const SHT_DYNSYM: u32 = 11;
/// The size of one section header and of one symbol, in ELF64.
const SECTION_HEADER_LEN: usize = 64;
const SYMBOL_LEN: usize = 24;
/// A bound on a table read, so a damaged header cannot ask for gigabytes
/// (the section count is a 16-bit field: bounded already).
const MAX_TABLE_LEN: u64 = 256 << 20;

/// Whether the ELF file at `path` defines the dynamic symbol `name`;
/// `None` when the file is not 64-bit little-endian ELF or its tables do
/// not read as such (then only loading it can tell).
pub(crate) fn defines_dynamic_symbol(path: &Path, name: &str) -> Option<bool> {
    let mut file = File::open(path).ok()?;
    let sections = section_headers(&mut file)?;
    let dynsym = sections.iter().find(|s| s.kind == SHT_DYNSYM)?;
    let strings = sections.get(usize::try_from(dynsym.link).ok()?)?;
    let symbols = read_at(&mut file, dynsym.offset, dynsym.size)?;
    let names = read_at(&mut file, strings.offset, strings.size)?;
    Some(symbols.chunks_exact(SYMBOL_LEN).any(|symbol| {
        let defined = u16_at(symbol, 6) != 0; // st_shndx != SHN_UNDEF
        defined && name_at(&names, u32_at(symbol, 0)) == Some(name.as_bytes())
    }))
}

/// The fields of a section header this module uses.
struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

fn section_headers(file: &mut File) -> Option<Vec<Section>> {
    let mut header = [0u8; 64];
    file.read_exact(&mut header).ok()?;
    // Magic, ELFCLASS64, ELFDATA2LSB.
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let offset = u64_at(&header, 0x28);
    let entry_len = usize::from(u16_at(&header, 0x3A));
    let count = usize::from(u16_at(&header, 0x3C));
    if entry_len != SECTION_HEADER_LEN {
        return None;
    }
    let table = read_at(file, offset, (count * SECTION_HEADER_LEN) as u64)?;
    Some(
        table
            .chunks_exact(SECTION_HEADER_LEN)
            .map(|s| Section {
                kind: u32_at(s, 4),
                offset: u64_at(s, 24),
                size: u64_at(s, 32),
                link: u32_at(s, 40),
            })
            .collect(),
    )
}

fn read_at(file: &mut File, offset: u64, len: u64) -> Option<Vec<u8>> {
    if len > MAX_TABLE_LEN {
        return None;
    }
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = vec![0; usize::try_from(len).ok()?];
    file.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// The NUL-terminated name at `offset` of a string table.
fn name_at(strings: &[u8], offset: u32) -> Option<&[u8]> {
    let rest = strings.get(usize::try_from(offset).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(&rest[..end])
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary: an ELF executable with a dynamic symbol table
    /// (Rust executables export and import a few symbols).
    fn this_binary() -> std::path::PathBuf {
        std::env::current_exe().unwrap()
    }

    #[test]
    fn a_defined_symbol_is_found_and_an_imported_or_absent_one_is_not() {
        // Every dynamically linked Rust binary imports `malloc` from libc:
        // it is in the table, but undefined there.
        let path = this_binary();
        assert_eq!(defines_dynamic_symbol(&path, "malloc"), Some(false));
        assert_eq!(
            defines_dynamic_symbol(&path, "no_such_symbol_anywhere"),
            Some(false)
        );
    }

    /// The C library this process runs with: a shared library that
    /// defines `malloc`.
    fn libc() -> std::path::PathBuf {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .find(|path| path.contains("/libc.so") || path.contains("/libc-"))
            .expect("a libc mapped into this process")
            .into()
    }

    #[test]
    fn a_symbol_a_library_defines_is_found() {
        assert_eq!(defines_dynamic_symbol(&libc(), "malloc"), Some(true));
    }

    #[test]
    fn files_that_are_not_64_bit_little_endian_elf_are_left_to_the_loader() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8]); 4] = [
            ("text", b"not a library at all"),
            ("short", b"\x7fELF\x02\x01"),
            ("elf32", &[0x7f, b'E', b'L', b'F', 1, 1, 0, 0]),
            ("big-endian", &[0x7f, b'E', b'L', b'F', 2, 2, 0, 0]),
        ];
        for (name, bytes) in cases {
            let mut padded = bytes.to_vec();
            padded.resize(128, 0);
            let path = dir.path().join(name);
            std::fs::write(&path, padded).unwrap();
            assert_eq!(defines_dynamic_symbol(&path, "x"), None, "{name}");
        }
    }

    #[test]
    fn only_a_symbol_of_the_name_asked_for_counts() {
        assert_eq!(
            defines_dynamic_symbol(&libc(), "no_such_symbol_anywhere"),
            Some(false)
        );
    }

    /// This binary with `damage` done to its bytes: read as it is, its
    /// table imports `malloc`.
    fn damaged(damage: impl FnOnce(&mut Vec<u8>)) -> Option<bool> {
        let mut bytes = std::fs::read(this_binary()).unwrap();
        damage(&mut bytes);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged");
        std::fs::write(&path, bytes).unwrap();
        defines_dynamic_symbol(&path, "malloc")
    }

    #[test]
    fn a_whole_binary_with_another_magic_class_or_byte_order_is_left_to_the_loader() {
        assert_eq!(damaged(|_| {}), Some(false), "the undamaged binary reads");
        assert_eq!(damaged(|b| b[0] = b'X'), None, "magic");
        assert_eq!(damaged(|b| b[4] = 1), None, "32-bit class");
        assert_eq!(damaged(|b| b[5] = 2), None, "big-endian");
        // A section header size other than ELF64's.
        assert_eq!(damaged(|b| b[0x3A] = 40), None, "section header size");
    }

    #[test]
    fn a_table_longer_than_the_bound_is_not_read() {
        let mut file = File::open(this_binary()).unwrap();
        // Allocating this much would abort the test.
        assert_eq!(read_at(&mut file, 0, u64::MAX), None);
        assert_eq!(read_at(&mut file, 0, MAX_TABLE_LEN + 1), None);
        assert_eq!(read_at(&mut file, 0, 4).as_deref(), Some(&b"\x7fELF"[..]));
    }

    #[test]
    fn fields_are_read_little_endian() {
        let bytes = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        assert_eq!(u16_at(&bytes, 0), 0x0201);
        assert_eq!(u32_at(&bytes, 0), 0x0403_0201);
        assert_eq!(u64_at(&bytes, 0), 0x0807_0605_0403_0201);
    }

    #[test]
    fn a_damaged_section_table_is_left_to_the_loader() {
        let mut bytes = std::fs::read(this_binary()).unwrap();
        // Section header offset past the end of the file.
        bytes[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged");
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(defines_dynamic_symbol(&path, "malloc"), None);
    }
}
