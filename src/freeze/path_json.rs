//! Paths in JSON (the guardian's spec, the run's record) byte for byte: a UTF-8 path as a
//! string, any other as the array of its bytes (a mount point named in Latin-1 is a mount point
//! like any other). Use with `#[serde(with = "path_json")]` or `path_json::option`.

use serde::{Deserialize, Deserializer, Serializer};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Bytes(Vec<u8>),
}

impl From<Repr> for PathBuf {
    fn from(r: Repr) -> Self {
        match r {
            Repr::Text(t) => PathBuf::from(t),
            Repr::Bytes(b) => PathBuf::from(OsString::from_vec(b)),
        }
    }
}

/// A path as a string, or as its bytes when it is not UTF-8.
pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    match path.to_str() {
        Some(text) => s.serialize_str(text),
        None => s.collect_seq(path.as_os_str().as_bytes()),
    }
}

/// The inverse of [`serialize`].
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Repr::deserialize(d).map(PathBuf::from)
}

/// The same for `Option<PathBuf>`.
pub mod option {
    use super::Repr;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::path::PathBuf;

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(p) => super::serialize(p, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Option::<Repr>::deserialize(d).map(|r| r.map(PathBuf::from))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        #[serde(with = "super")]
        p: PathBuf,
        #[serde(with = "super::option")]
        o: Option<PathBuf>,
    }

    #[test]
    fn any_path_round_trips() {
        for bytes in [&b"/mnt/data"[..], b"/mnt/caf\xe9", b"/mnt/new\nline"] {
            let s = S {
                p: PathBuf::from(OsStr::from_bytes(bytes)),
                o: Some(PathBuf::from(OsStr::from_bytes(bytes))),
            };
            let text = serde_json::to_string(&s).unwrap();
            assert!(!text.contains('\n'));
            assert_eq!(serde_json::from_str::<S>(&text).unwrap(), s);
        }
        let s = S {
            p: PathBuf::from("/x"),
            o: None,
        };
        assert_eq!(
            serde_json::from_str::<S>(&serde_json::to_string(&s).unwrap()).unwrap(),
            s
        );
    }
}
