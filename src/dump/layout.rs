//! Which engine wrote a dump, and where its five RocksDB instances are (spec §2): nemo (2.3.x)
//! `<dump>/{kv,hash,list,set,zset}`, blackwidow 3.0 `<dump>/{strings,...}`, blackwidow 3.1–3.4
//! `<dump>/db0/{strings,...}`.

use std::path::{Path, PathBuf};

use super::record::{DataType, DumpError};

/// The storage engine and directory layout of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Pika 2.3.x: nemo, type directories at the root.
    Nemo,
    /// Pika 3.0.x: blackwidow, type directories at the root.
    Blackwidow30,
    /// Pika 3.1–3.4: blackwidow under `db0/`.
    Blackwidow31,
}

impl Engine {
    /// The type directory of `t` (`kv` or `strings`, ...).
    pub fn type_dir(self, t: DataType) -> &'static str {
        match self {
            Engine::Nemo => match t {
                DataType::String => "kv",
                DataType::Hash => "hash",
                DataType::List => "list",
                DataType::Set => "set",
                DataType::ZSet => "zset",
            },
            _ => match t {
                DataType::String => "strings",
                DataType::Hash => "hashes",
                DataType::List => "lists",
                DataType::Set => "sets",
                DataType::ZSet => "zsets",
            },
        }
    }

    /// A short name for logs (`nemo (2.3)`, `blackwidow (3.0)`, `blackwidow (3.1+)`).
    pub fn describe(self) -> &'static str {
        match self {
            Engine::Nemo => "nemo (2.3)",
            Engine::Blackwidow30 => "blackwidow (3.0)",
            Engine::Blackwidow31 => "blackwidow (3.1+)",
        }
    }
}

/// The five types in the order readers stream them.
pub const TYPES: [DataType; 5] = [
    DataType::String,
    DataType::Hash,
    DataType::List,
    DataType::Set,
    DataType::ZSet,
];

/// A located dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The engine.
    pub engine: Engine,
    /// The directory given (or the one dated sub-directory found in it).
    pub dir: PathBuf,
    /// The directory holding the five type directories (`dir` or `dir/db0`).
    pub db_root: PathBuf,
}

impl Layout {
    /// The RocksDB directory of type `t`.
    pub fn instance(&self, t: DataType) -> PathBuf {
        self.db_root.join(self.engine.type_dir(t))
    }

    /// The dump's `info` file (`dir/info`, or `dir/db0/info` for 3.1+ when present there).
    pub fn info_file(&self) -> PathBuf {
        let inner = self.db_root.join("info");
        if inner.is_file() {
            inner
        } else {
            self.dir.join("info")
        }
    }
}

fn has_all(root: &Path, engine: Engine) -> Result<bool, Vec<&'static str>> {
    let missing: Vec<&'static str> = TYPES
        .iter()
        .map(|t| engine.type_dir(*t))
        .filter(|d| !root.join(d).is_dir())
        .collect();
    if missing.is_empty() {
        Ok(true)
    } else if missing.len() == TYPES.len() {
        Ok(false)
    } else {
        Err(missing)
    }
}

/// Detects the layout of `dir`. A directory holding exactly one sub-directory that is a dump
/// (Pika's `<dump-path>/<prefix>YYYYMMDD/`) is accepted too. Some but not all type directories
/// is an error naming the missing ones.
pub fn detect(dir: &Path) -> Result<Layout, DumpError> {
    let err = |why: String| DumpError::Layout {
        dir: dir.display().to_string(),
        why,
    };
    if !dir.is_dir() {
        return Err(err("not a directory".into()));
    }
    let candidates = [
        (dir.to_path_buf(), Engine::Nemo),
        (dir.to_path_buf(), Engine::Blackwidow30),
        (dir.join("db0"), Engine::Blackwidow31),
    ];
    for (root, engine) in candidates {
        match has_all(&root, engine) {
            Ok(true) => {
                return Ok(Layout {
                    engine,
                    dir: dir.to_path_buf(),
                    db_root: root,
                })
            }
            Ok(false) => {}
            Err(missing) => {
                return Err(err(format!(
                    "looks like a {} dump but lacks the type directories {}",
                    engine.describe(),
                    missing.join(", ")
                )))
            }
        }
    }
    let subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| err(e.to_string()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    if let [only] = &subdirs[..] {
        if let Ok(l) = detect(only) {
            return Ok(l);
        }
    }
    Err(err(
        "no dump here: expected kv/hash/list/set/zset (2.3), strings/hashes/lists/sets/zsets (3.0) or db0/strings/... (3.1+)"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(root: &Path, dirs: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
    }

    #[test]
    fn detects_each_layout_and_a_dated_parent() {
        let t = tempfile::tempdir().unwrap();
        let n = t.path().join("n");
        mk(&n, &["kv", "hash", "list", "set", "zset"]);
        assert_eq!(detect(&n).unwrap().engine, Engine::Nemo);
        let b = t.path().join("b");
        mk(&b, &["strings", "hashes", "lists", "sets", "zsets"]);
        assert_eq!(detect(&b).unwrap().engine, Engine::Blackwidow30);
        let c = t.path().join("c/20261122");
        mk(
            &c,
            &[
                "db0/strings",
                "db0/hashes",
                "db0/lists",
                "db0/sets",
                "db0/zsets",
            ],
        );
        let l = detect(&t.path().join("c")).unwrap();
        assert_eq!(l.engine, Engine::Blackwidow31);
        assert_eq!(l.instance(DataType::List), c.join("db0/lists"));
    }

    #[test]
    fn partial_or_empty_dirs_are_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        mk(t.path(), &["kv", "hash"]);
        let e = detect(t.path()).unwrap_err().to_string();
        assert!(e.contains("list, set, zset"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(detect(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no dump here"));
    }
}
