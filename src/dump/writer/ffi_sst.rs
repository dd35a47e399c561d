//! A safe wrapper over RocksDB's C `SstFileWriter` with the table options Pika's RocksDB 5.9.2
//! reads. The `rocksdb` crate version that links Debian's RocksDB 7.8 has no setter for the
//! checksum type (7.8 defaults to XXH3, which 5.9.2 refuses), so the options are built here
//! through the C API (`librocksdb-sys`, the crate's own bindings) with every field set
//! explicitly: block-based, `format_version = 2`, CRC32c, the compression asked, the column
//! family's comparator.

use std::cmp::Ordering;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;

use librocksdb_sys as ffi;

use crate::dump::comparators::KeyOrder;

/// `rocksdb::ChecksumType::kCRC32c`.
const CRC32C: c_char = 1;
/// `rocksdb_no_compression` / `rocksdb_snappy_compression`.
const NO_COMPRESSION: c_int = 0;
const SNAPPY_COMPRESSION: c_int = 1;

/// A named key order for the C API.
struct CmpState {
    name: CString,
    cmp: KeyOrder,
}

unsafe extern "C" fn cmp_compare(
    state: *mut c_void,
    a: *const c_char,
    alen: usize,
    b: *const c_char,
    blen: usize,
) -> c_int {
    // SAFETY: RocksDB passes the state given at creation and two valid slices.
    let st = unsafe { &*(state as *const CmpState) };
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a as *const u8, alen),
            std::slice::from_raw_parts(b as *const u8, blen),
        )
    };
    match (st.cmp)(a, b) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

unsafe extern "C" fn cmp_name(state: *mut c_void) -> *const c_char {
    // SAFETY: the state outlives the comparator.
    unsafe { (*(state as *const CmpState)).name.as_ptr() }
}

unsafe extern "C" fn cmp_destroy(state: *mut c_void) {
    // SAFETY: created by Box::into_raw in `RawSstWriter::new`, destroyed once by RocksDB.
    drop(unsafe { Box::from_raw(state as *mut CmpState) });
}

fn take_err(err: *mut c_char) -> Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: RocksDB returns a NUL-terminated malloc'd message, freed with rocksdb_free.
    let msg = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { ffi::rocksdb_free(err as *mut c_void) };
    Err(msg)
}

/// One SST file being written.
pub struct RawSstWriter {
    opts: *mut ffi::rocksdb_options_t,
    env: *mut ffi::rocksdb_envoptions_t,
    cmp: *mut ffi::rocksdb_comparator_t,
    w: *mut ffi::rocksdb_sstfilewriter_t,
}

// SAFETY: the handles are owned exclusively and RocksDB's objects are not thread-affine.
unsafe impl Send for RawSstWriter {}

impl RawSstWriter {
    /// A writer with the 5.9.2-readable table options, `comparator` (`None` = bytewise) and
    /// Snappy or no compression.
    pub fn new(comparator: Option<(&str, KeyOrder)>, snappy: bool) -> Self {
        // SAFETY: plain C constructors/setters on freshly created objects; ownership is
        // tracked by the struct and released in Drop in reverse order.
        unsafe {
            let opts = ffi::rocksdb_options_create();
            let bbo = ffi::rocksdb_block_based_options_create();
            ffi::rocksdb_block_based_options_set_format_version(bbo, 2);
            ffi::rocksdb_block_based_options_set_checksum(bbo, CRC32C);
            ffi::rocksdb_options_set_block_based_table_factory(opts, bbo);
            ffi::rocksdb_block_based_options_destroy(bbo);
            ffi::rocksdb_options_set_compression(
                opts,
                if snappy {
                    SNAPPY_COMPRESSION
                } else {
                    NO_COMPRESSION
                },
            );
            let mut cmp = std::ptr::null_mut();
            if let Some((name, f)) = comparator {
                let st = Box::new(CmpState {
                    name: CString::new(name).expect("comparator names have no NUL"),
                    cmp: f,
                });
                cmp = ffi::rocksdb_comparator_create(
                    Box::into_raw(st) as *mut c_void,
                    Some(cmp_destroy),
                    Some(cmp_compare),
                    Some(cmp_name),
                );
                ffi::rocksdb_options_set_comparator(opts, cmp);
            }
            let env = ffi::rocksdb_envoptions_create();
            let w = ffi::rocksdb_sstfilewriter_create(env, opts);
            RawSstWriter { opts, env, cmp, w }
        }
    }

    /// Creates the file at `path`.
    pub fn open(&mut self, path: &Path) -> Result<(), String> {
        let p = CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
        let mut err = std::ptr::null_mut();
        // SAFETY: valid writer and NUL-terminated path.
        unsafe { ffi::rocksdb_sstfilewriter_open(self.w, p.as_ptr(), &mut err) };
        take_err(err)
    }

    /// Appends an entry (keys strictly ascending in the comparator's order).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: valid writer; RocksDB copies the bytes.
        unsafe {
            ffi::rocksdb_sstfilewriter_put(
                self.w,
                key.as_ptr() as *const c_char,
                key.len(),
                value.as_ptr() as *const c_char,
                value.len(),
                &mut err,
            )
        };
        take_err(err)
    }

    /// Writes the footer and closes the file.
    pub fn finish(&mut self) -> Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: valid writer.
        unsafe { ffi::rocksdb_sstfilewriter_finish(self.w, &mut err) };
        take_err(err)
    }
}

impl Drop for RawSstWriter {
    fn drop(&mut self) {
        // SAFETY: each handle was created in `new` and is destroyed once; the comparator last,
        // after everything that refers to it.
        unsafe {
            ffi::rocksdb_sstfilewriter_destroy(self.w);
            ffi::rocksdb_envoptions_destroy(self.env);
            ffi::rocksdb_options_destroy(self.opts);
            if !self.cmp.is_null() {
                ffi::rocksdb_comparator_destroy(self.cmp);
            }
        }
    }
}
