//! Keeping the process's memory flat on glibc: how the allocator treats the memory the
//! journal and the batches free. Owns nothing else; elsewhere (musl, macOS) it is a no-op.
//!
//! sled allocates 512 KiB I/O buffers; with glibc's dynamic mmap threshold, once one is freed
//! the threshold rises and later buffers come from the heap, where they fragment it, and every
//! thread sled starts gets its own arena. [`tune`] fixes the threshold and keeps one arena (the
//! migrator does its work on one thread; measured: 44 MB at 1 M keys with one arena, 47 MB
//! with two).
//! Measured in docs/benchmarks.md (calling `malloc_trim` after every batch was also tried: it
//! made no difference to the peak and cost time).

/// Sets the allocator's parameters. Call first thing, before any thread starts.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    // SAFETY: mallopt only sets allocator parameters; no thread has started yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
