//! Cache hints for slots that change hands between CPUs: the flush thread asks for a
//! queued slot's lines before it reads them ([`for_read`]), a caller for a free slot's
//! lines before it writes them ([`for_write`]).
//!
//! Both are hints: they never fault and change nothing but timing, so on other
//! architectures they do nothing.

use crate::slots::Slot;

/// Lines of a slot worth asking for: a typed DataStorage event captured takes 5 to 6 (its
/// 107-byte header and ~250 bytes of fields), a JSON line of 300-odd bytes as many.
#[cfg(target_arch = "x86_64")]
const LINES: usize = 6;

/// Asks the CPU to start loading a slot's first bytes (the part a flush thread reads
/// first), without waiting for them.
#[inline]
pub(crate) fn for_read(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        for line in slot.chunks(64).take(8) {
            // Safety: `_mm_prefetch` needs SSE, which every x86_64 CPU has, and is a hint
            // that never faults whatever the address; this one is inside the slot anyway.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast::<i8>());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// Asks the CPU to take the first lines of a free slot's buffer into its cache for
/// writing, without waiting.
///
/// The flush thread read those lines last, so before the caller's first write to each
/// the CPU must take it back from the other CPU's cache, and a locked instruction after
/// the writes (the `recorded` count) waits for all of them: in `hot_path`, 32 % of a typed
/// `record`'s samples sat on that count with the copy into the slot before it. Asked for
/// as the slot is taken — and for the next slot of the caller's bundle, whose lines then
/// travel while the caller does whatever it does between two events — the transfers
/// overlap the checks instead (one lane, p50 of 500 000 calls in alternating runs: 432–527 ns
/// before, 354–432 after; 11-round `hot_path` runs: 3.07–3.17× the floor's p50 before,
/// 2.36–2.54× after).
///
/// `PREFETCHW` (every AMD x86-64 CPU; Intel's report it from Broadwell, 2014, on) is used
/// where `CPUID` says the CPU has it, a plain read prefetch elsewhere, which still moves
/// the line closer.
#[inline(always)]
pub(crate) fn for_write(slot: &Slot) {
    #[cfg(target_arch = "x86_64")]
    {
        let start = slot.as_ptr();
        let lines = slot.capacity().min(LINES * 64).div_ceil(64);
        let write = has_prefetchw();
        for line in 0..lines {
            let at = start.wrapping_add(64 * line);
            // Safety: a prefetch is a hint that never faults whatever the address (these
            // lie within the buffer's capacity anyway) and writes nothing; `PREFETCHW`
            // only runs where `CPUID` reports it; `_mm_prefetch` needs SSE, which every
            // x86_64 CPU has.
            #[allow(unsafe_code)]
            unsafe {
                if write {
                    std::arch::asm!(
                        "prefetchw [{0}]",
                        in(reg) at,
                        options(nostack, preserves_flags, readonly)
                    );
                } else {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(at.cast::<i8>());
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

/// Whether the CPU has `PREFETCHW` (`CPUID` leaf 0x8000_0001, ECX bit 8), asked once.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_prefetchw() -> bool {
    use std::arch::x86_64::{__cpuid, __get_cpuid_max};
    use std::sync::atomic::{AtomicU8, Ordering};
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static HAS: AtomicU8 = AtomicU8::new(UNKNOWN);
    match HAS.load(Ordering::Relaxed) {
        UNKNOWN => {
            // `__cpuid` is safe to call from Rust 1.94 on; `unsafe` for the 1.89 this crate
            // supports. Safety: `CPUID` exists on every x86_64 CPU, and leaf 0x8000_0001 is
            // read only where the highest extended leaf reaches it (a hypervisor may cap
            // the leaves, and an Intel CPU answers a leaf past the highest with another's).
            #[allow(unused_unsafe, unsafe_code)]
            let has = unsafe {
                __get_cpuid_max(0x8000_0000).0 >= 0x8000_0001
                    && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
            };
            HAS.store(if has { YES } else { NO }, Ordering::Relaxed);
            has
        }
        state => state == YES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_change_nothing_in_the_slot_whatever_its_size() {
        for capacity in [0, 1, 63, 64, 65, 383, 384, 385, 4096] {
            let mut slot = Slot::new(capacity);
            slot.extend_from_slice(b"{\"a\":1}");
            for_write(&slot);
            for_read(&slot);
            assert_eq!(&slot[..], b"{\"a\":1}");
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            has_prefetchw(),
            has_prefetchw(),
            "asked once, then remembered"
        );
    }
}
