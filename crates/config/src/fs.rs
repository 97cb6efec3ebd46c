//! File access behind a trait, so that the semantics can be tested on an in-memory tree.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// One name in a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    /// Whether it is a directory, following symbolic links.
    pub is_dir: bool,
}

/// What the configuration reader needs from a file system. Paths are strings because
/// fail2ban computes and compares them as strings.
pub trait FileSystem {
    /// The contents of a file.
    fn read(&self, path: &str) -> io::Result<Vec<u8>>;
    /// Whether the path exists, following symbolic links (`os.path.exists`).
    fn exists(&self, path: &str) -> bool;
    /// Whether the path exists as a name, even as a dangling link (`os.path.lexists`).
    fn lexists(&self, path: &str) -> bool {
        self.exists(path)
    }
    /// `os.path.isfile`.
    fn is_file(&self, path: &str) -> bool;
    /// `os.path.isdir`.
    fn is_dir(&self, path: &str) -> bool;
    /// The names in a directory, in the file system's own order (like `os.scandir`).
    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFs;

impl FileSystem for OsFs {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }
    fn lexists(&self, path: &str) -> bool {
        std::fs::symlink_metadata(path).is_ok()
    }
    fn is_file(&self, path: &str) -> bool {
        Path::new(path).is_file()
    }
    fn is_dir(&self, path: &str) -> bool {
        Path::new(path).is_dir()
    }
    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let dir = if path.is_empty() { "." } else { path };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let Ok(entry) = entry else { continue };
            let is_dir = entry.path().is_dir();
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                is_dir,
            });
        }
        Ok(out)
    }
}

#[derive(Clone, Debug)]
enum Node {
    File(Vec<u8>),
    Dir,
    /// A symbolic link whose target does not exist.
    Dangling,
}

/// An in-memory tree for tests: files, directories and dangling links, listed in name
/// order. Parent directories are created implicitly.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    nodes: BTreeMap<String, Node>,
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn file(mut self, path: &str, contents: &str) -> Self {
        self.insert(path, Node::File(contents.as_bytes().to_vec()));
        self
    }

    /// Adds a file with arbitrary bytes.
    pub fn bytes(mut self, path: &str, contents: &[u8]) -> Self {
        self.insert(path, Node::File(contents.to_vec()));
        self
    }

    /// Adds an empty directory.
    pub fn dir(mut self, path: &str) -> Self {
        self.insert(path, Node::Dir);
        self
    }

    /// Adds a symbolic link that points nowhere.
    pub fn dangling(mut self, path: &str) -> Self {
        self.insert(path, Node::Dangling);
        self
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = normalize(path);
        let mut parent = crate::pypath::dirname(&path).to_string();
        while !parent.is_empty() && parent != "/" {
            self.nodes.entry(parent.clone()).or_insert(Node::Dir);
            parent = crate::pypath::dirname(&parent).to_string();
        }
        self.nodes.insert(path, node);
    }

    fn node(&self, path: &str) -> Option<&Node> {
        let path = normalize(path);
        if path.is_empty() {
            return None;
        }
        if path == "/" {
            return Some(&Node::Dir);
        }
        self.nodes.get(&path)
    }
}

/// Resolves `.`, `..` and repeated or trailing slashes lexically.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

impl FileSystem for MemFs {
    fn read(&self, path: &str) -> io::Result<Vec<u8>> {
        match self.node(path) {
            Some(Node::File(b)) => Ok(b.clone()),
            Some(Node::Dir) => Err(io::Error::other("is a directory")),
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }
    fn exists(&self, path: &str) -> bool {
        matches!(self.node(path), Some(Node::File(_) | Node::Dir))
    }
    fn lexists(&self, path: &str) -> bool {
        self.node(path).is_some()
    }
    fn is_file(&self, path: &str) -> bool {
        matches!(self.node(path), Some(Node::File(_)))
    }
    fn is_dir(&self, path: &str) -> bool {
        matches!(self.node(path), Some(Node::Dir))
    }
    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        if !self.is_dir(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let dir = normalize(path);
        let prefix = if dir.is_empty() || dir == "/" {
            dir.clone()
        } else {
            format!("{dir}/")
        };
        Ok(self
            .nodes
            .iter()
            .filter_map(|(p, node)| {
                let rest = p.strip_prefix(&prefix)?;
                (!rest.is_empty() && !rest.contains('/')).then(|| DirEntry {
                    name: rest.to_string(),
                    is_dir: matches!(node, Node::Dir),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_fs_implies_parents_and_lists_children() {
        let fs = MemFs::new()
            .file("/etc/f2b/jail.conf", "x")
            .file("/etc/f2b/jail.d/a.conf", "y")
            .dangling("/etc/f2b/link");
        assert!(fs.is_dir("/etc/f2b/jail.d"));
        assert!(fs.is_file("/etc/f2b/./jail.d/../jail.conf"));
        assert!(!fs.exists("/etc/f2b/link") && fs.lexists("/etc/f2b/link"));
        let names: Vec<_> = fs
            .list_dir("/etc/f2b")
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.is_dir))
            .collect();
        assert_eq!(
            names,
            vec![
                ("jail.conf".to_string(), false),
                ("jail.d".to_string(), true),
                ("link".to_string(), false)
            ]
        );
    }
}
