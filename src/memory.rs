//! Giving back the pages a daemon touched only while it started.
//!
//! An idle agent runs little of its own code: heartbeats and the consumer loop.
//! Start-up ran much more (argument parsing, configuration, NATS provisioning,
//! the D-Bus handshake), and the kernel's fault-around maps 64 KiB around every
//! code page touched, so most of the executable would stay resident for the
//! agent's whole life although it never runs again. Once ready, the agent drops
//! those pages: the ones only it maps are reclaimed (`MADV_PAGEOUT`), the rest
//! (shared with an API on the same host) are unmapped from it (`MADV_DONTNEED`).
//! A page it needs again is mapped back from the file on first use. The same
//! happens again once the agent has been quiet for a while after running jobs
//! ([`IdleRelease`]), so its footprint returns to the idle one.
//!
//! Only read-only private mappings of the executable that hold no
//! copied-on-write pages are advised: every page there is exactly the file's
//! content, so dropping it loses nothing. Relocated data (RELRO) has private
//! copies and is left alone.

use std::io;

/// An address range of this process.
type Range = std::ops::Range<usize>;

/// Drop this process's resident pages of its own executable's read-only
/// mappings. Returns how many bytes of address space were advised.
/// Every mapping is tried; the first error is returned after the others.
pub fn release_executable_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut advised = 0;
    let mut first_error = None;
    for range in clean_read_only_mappings(&smaps, &exe.to_string_lossy()) {
        // Kernels before 5.4 lack MADV_PAGEOUT; MADV_DONTNEED alone still
        // unmaps, so its error is not worth reporting.
        let _ = advise(&range, libc::MADV_PAGEOUT);
        match advise(&range, libc::MADV_DONTNEED) {
            Ok(()) => advised += range.len(),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(advised),
    }
}

/// Give the heap's free memory back to the system. glibc keeps what a
/// burst freed (the API builds its OpenAPI document once at start, several
/// MiB of small allocations, then drops it) for later allocations; a daemon
/// that is now idle would hold it for good. No-op off glibc.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// When to release pages again after work: at a check that finds no job taken
/// since the previous check and none running, if any job ran since the last
/// release. Checks come once per period, so no job started for at least that
/// long (a long job may have ended just before the check).
#[derive(Debug, Default)]
pub struct IdleRelease {
    taken_at_last_check: usize,
    taken_at_last_release: usize,
}

impl IdleRelease {
    /// `taken`: jobs taken since start; `running`: jobs running now. True when
    /// the pages should be released now.
    pub fn check(&mut self, taken: usize, running: usize) -> bool {
        let quiet = taken == self.taken_at_last_check && running == 0;
        self.taken_at_last_check = taken;
        if quiet && taken != self.taken_at_last_release {
            self.taken_at_last_release = taken;
            return true;
        }
        false
    }
}

fn advise(range: &Range, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: `range` is a whole mapping the kernel listed for this process: a
    // private, read-only mapping of our executable file with no private page,
    // resident or swapped (nothing writes a read-only mapping, so that still
    // holds). Dropping its pages only unmaps file content, which the next
    // access maps back; no Rust object lives in it.
    let rc = unsafe { libc::madvise(range.start as *mut libc::c_void, range.len(), advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The private, read-only mappings of `exe` that hold no private page, in
/// memory (`Anonymous`) or swapped out (`Swap`), read from the text of
/// `/proc/<pid>/smaps`. A mapping missing either line is not chosen.
fn clean_read_only_mappings(smaps: &str, exe: &str) -> Vec<Range> {
    /// The mapping being read: its range if it is a candidate, and what its
    /// `Anonymous` and `Swap` lines said so far.
    struct Block {
        range: Range,
        anonymous_zero: Option<bool>,
        swap_zero: Option<bool>,
    }
    fn finish(block: Option<Block>, out: &mut Vec<Range>) {
        if let Some(b) = block
            && b.anonymous_zero == Some(true)
            && b.swap_zero == Some(true)
        {
            out.push(b.range);
        }
    }

    let mut out = Vec::new();
    let mut block: Option<Block> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some(range) = parse_range(first) {
            // A mapping's header: range, perms, offset, dev, inode, path.
            finish(block.take(), &mut out);
            let perms = fields.next().unwrap_or_default().as_bytes();
            // Skip offset, dev and inode; the path may contain spaces.
            let path = fields.nth(2).map(|_| fields.collect::<Vec<_>>().join(" "));
            let private_read_only =
                perms.len() == 4 && perms[0] == b'r' && perms[1] == b'-' && perms[3] == b'p';
            block = (private_read_only && path.as_deref() == Some(exe)).then_some(Block {
                range,
                anonymous_zero: None,
                swap_zero: None,
            });
        } else if let Some(b) = block.as_mut() {
            let zero = fields.next() == Some("0");
            match first {
                "Anonymous:" => b.anonymous_zero = Some(zero),
                "Swap:" => b.swap_zero = Some(zero),
                _ => {}
            }
        }
    }
    finish(block, &mut out);
    out
}

fn parse_range(field: &str) -> Option<Range> {
    let (start, end) = field.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (start < end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d000000000-55d000100000 r--p 00000000 fe:01 42 /usr/bin/osapi
Size:               1024 kB
Rss:                 512 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me
55d000100000-55d000900000 r-xp 00100000 fe:01 42 /usr/bin/osapi
Size:               8192 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd ex mr mw me
55d000900000-55d000980000 r--p 00900000 fe:01 42 /usr/bin/osapi
Size:                512 kB
Anonymous:           508 kB
Swap:                  0 kB
VmFlags: rd mr mw me ac
55d000980000-55d000983000 rw-p 00980000 fe:01 42 /usr/bin/osapi
Anonymous:             0 kB
Swap:                  0 kB
55d000990000-55d000994000 r--p 00990000 fe:01 42 /usr/bin/osapi
Anonymous:             0 kB
Swap:                 16 kB
55d0009a0000-55d0009a4000 r--p 009a0000 fe:01 42 /usr/bin/osapi
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00028000 fe:01 7 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
Swap:                  0 kB
7f0000200000-7f0000210000 r--p 00000000 fe:01 9 /opt/my tools/osapi
Anonymous:             0 kB
Swap:                  0 kB
7f0000300000-7f0000310000 r--s 00000000 fe:01 42 /usr/bin/osapi
Anonymous:             0 kB
Swap:                  0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Anonymous:           132 kB
Swap:                  0 kB
";

    #[test]
    fn only_clean_read_only_private_mappings_of_the_executable_are_chosen() {
        // Not chosen: the RELRO mapping with private pages in memory, one
        // with private pages swapped out, one whose block lacks `Swap`, the
        // writable, shared and other files' mappings.
        let ranges = clean_read_only_mappings(SMAPS, "/usr/bin/osapi");
        assert_eq!(
            ranges,
            vec![
                0x55d0_0000_0000..0x55d0_0010_0000,
                0x55d0_0010_0000..0x55d0_0090_0000,
            ]
        );
        // Paths with spaces are matched whole.
        assert_eq!(
            clean_read_only_mappings(SMAPS, "/opt/my tools/osapi").len(),
            1
        );
        assert!(clean_read_only_mappings(SMAPS, "/usr/bin/other").is_empty());
        assert!(clean_read_only_mappings("", "/usr/bin/osapi").is_empty());
    }

    #[test]
    fn pages_are_released_once_after_a_quiet_period_following_work() {
        let mut idle = IdleRelease::default();
        // Idle since start (released at start-up already): nothing to do.
        assert!(!idle.check(0, 0));
        assert!(!idle.check(0, 0));
        // Jobs came in during this period: not quiet yet.
        assert!(!idle.check(5, 0));
        // Quiet for a whole period after them: release, once.
        assert!(idle.check(5, 0));
        assert!(!idle.check(5, 0));
        // A long job keeps running without new ones: wait for it.
        assert!(!idle.check(6, 1));
        assert!(!idle.check(6, 1));
        assert!(idle.check(6, 0));
        assert!(!idle.check(6, 0));
    }

    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("RssFile:"))
            .unwrap()
            .to_owned();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn releasing_shrinks_the_resident_set_and_the_code_still_runs() {
        let before = rss_file_kib();
        let advised = release_executable_pages().unwrap();
        // The code that measures was unmapped too: running it maps it back.
        let after = rss_file_kib();
        assert!(advised > 0, "nothing of the test binary was advised");
        assert!(after < before, "RssFile {before} kB → {after} kB");
    }
}
