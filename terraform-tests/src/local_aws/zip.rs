//! Lambda deployment packages: a zip with one `bootstrap` entry (mode 0755), written by a
//! tiny writer of stored (uncompressed) entries. A zip crate would be one more dependency for
//! some 80 lines; the packages go over loopback, so their size does not matter.

use std::path::Path;

use anyhow::Context;

/// A zip of one executable file named `bootstrap` whose content is the file at `binary`, as
/// a `provided.al2023` function's package: e.g. `env!("CARGO_BIN_EXE_test-function")`.
pub fn bootstrap_zip(binary: impl AsRef<Path>) -> anyhow::Result<Vec<u8>> {
    let binary = binary.as_ref();
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    Ok(zip_stored(&[ZipEntry {
        name: "bootstrap",
        mode: 0o755,
        data: &bytes,
    }]))
}

/// One file of a [`zip_stored`] archive.
pub struct ZipEntry<'a> {
    pub name: &'a str,
    /// Unix permission bits (e.g. 0o755), kept in the entry's external attributes.
    pub mode: u32,
    pub data: &'a [u8],
}

/// A zip archive of `entries`, stored without compression, made on "Unix" (so the modes
/// count), with a fixed timestamp (1980-01-01) so equal inputs give equal bytes.
pub fn zip_stored(entries: &[ZipEntry<'_>]) -> Vec<u8> {
    const VERSION: u16 = 20; // 2.0: what stored entries need
    const MADE_BY_UNIX: u16 = (3 << 8) | VERSION;
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = (1 << 5) | 1; // 1980-01-01
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = u32::try_from(out.len()).expect("zip under 4 GiB");
        let size = u32::try_from(entry.data.len()).expect("entry under 4 GiB");
        let crc = crc32(entry.data);
        let name = entry.name.as_bytes();
        let name_len = u16::try_from(name.len()).expect("short entry name");

        put32(&mut out, 0x0403_4b50);
        put16(&mut out, VERSION);
        put16(&mut out, 0); // flags
        put16(&mut out, 0); // stored
        put16(&mut out, DOS_TIME);
        put16(&mut out, DOS_DATE);
        put32(&mut out, crc);
        put32(&mut out, size);
        put32(&mut out, size);
        put16(&mut out, name_len);
        put16(&mut out, 0); // extra
        out.extend_from_slice(name);
        out.extend_from_slice(entry.data);

        put32(&mut central, 0x0201_4b50);
        put16(&mut central, MADE_BY_UNIX);
        put16(&mut central, VERSION);
        put16(&mut central, 0);
        put16(&mut central, 0);
        put16(&mut central, DOS_TIME);
        put16(&mut central, DOS_DATE);
        put32(&mut central, crc);
        put32(&mut central, size);
        put32(&mut central, size);
        put16(&mut central, name_len);
        put16(&mut central, 0); // extra
        put16(&mut central, 0); // comment
        put16(&mut central, 0); // disk
        put16(&mut central, 0); // internal attributes
        put32(&mut central, (0o100000 | (entry.mode & 0o7777)) << 16); // regular file + mode
        put32(&mut central, offset);
        central.extend_from_slice(name);
    }
    let central_offset = u32::try_from(out.len()).expect("zip under 4 GiB");
    let central_size = u32::try_from(central.len()).expect("zip under 4 GiB");
    let count = u16::try_from(entries.len()).expect("fewer than 65536 entries");
    out.extend_from_slice(&central);
    put32(&mut out, 0x0605_4b50);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, count);
    put16(&mut out, count);
    put32(&mut out, central_size);
    put32(&mut out, central_offset);
    put16(&mut out, 0); // comment
    out
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// CRC-32 (IEEE 802.3, as zip uses), table-driven.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        table
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn unzip_reads_the_entry_and_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip_stored(&[ZipEntry {
            name: "bootstrap",
            mode: 0o755,
            data: b"#!/bin/sh\necho hi\n",
        }]);
        let path = dir.path().join("f.zip");
        std::fs::write(&path, &zip).unwrap();
        // Python's zipfile is what the local AWS unpacks with; use it when there is one.
        let Ok(out) = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 assert z.testzip() is None\n\
                 i = z.getinfo('bootstrap')\n\
                 print(oct((i.external_attr >> 16) & 0o7777), i.create_system, z.read(i).decode(), end='')",
            )
            .arg(&path)
            .output()
        else {
            eprintln!("no python3: checking the layout only");
            assert_eq!(&zip[..4], b"PK\x03\x04");
            return;
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "0o755 3 #!/bin/sh\necho hi\n"
        );
    }
}
