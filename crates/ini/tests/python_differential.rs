//! Differential test: our parser against Python's own `configparser`, configured the
//! way fail2ban configures it, over snippets chosen for their corner cases.

use std::io::Write;
use std::process::{Command, Stdio};

/// Corner cases of the dialect. Each one is parsed by both implementations.
const SNIPPETS: &[&str] = &[
    "[a]\nk = v\n",
    "[a]\nK = V\nk2:v2\nk3 : v3 = x : y\n",
    "[a]\nk =\n",
    "[a]\nk\n",
    "[a]\n= v\n",
    ": v\n",
    "k = v\n[a]\n",
    "\n\n  \n# c\n; c\n[a]\n",
    "[a]\nk = v ; comment\nj = v;not comment\nh = v\t; tab comment\n",
    "[a]\nk = v # not a comment\n# full\n  # indented full\n",
    "[a]\nk = ;\n",
    "[a]\nk = a\n  b\n\n  c\n\n\n",
    "[a]\nk = a\n  b\n  ; comment inside\n  c\n",
    "[a]\nk = a\n\n# comment after blank\n  c\n",
    "[a]\nk = a\n  b\nj = c\n    d\n  e\n",
    "[a]\n  k = a\n  j = b\n    c\n",
    "[a]\n  k = a\n j = b\n",
    "[a]\nk = a\n  [b]\n",
    "[a]\nk = a\n[b]\n  j = c\n",
    "[a]\n[a]\n",
    "[a]\nk=1\n[b]\nk=2\n[a]\n",
    "[a]\nk = 1\nK = 2\n",
    "[DEFAULT]\nx = 1\n[a]\n[DEFAULT]\ny = 2\n",
    "[DEFAULT]\nx = 1\n[DEFAULT]\nx = 2\n",
    "[a] trailing\nk = v\n",
    "[a]b]c\nk = v\n",
    "[]\nk = v\n",
    "[a\nk = v\n",
    "[Init?family=inet6]\nk = v\n",
    "[a]\nk = %(x)s %%\n",
    "[a]\nfailregex = ^%(__prefix_line)s(?:error: PAM: )?Authentication failure for .* from <HOST>\\s*$\n            ^\\[[^]]*\\] user \\S+ not allowed\n",
    "[a]\r\nk = v\r\n  w\r\n",
    "[a]\rk = v\r  w\r",
    "[a]\nk = v\x0bw\n",
    "[a]\nk = \u{a0}v\u{a0}\n",
    "[a]\n\u{3000}k = v\n\u{3000}\u{3000}w\n",
    "[a]\nk = v\n\tw\n",
    "[a]\nk = v\n\t\n\tw\n",
    "[a]\nbad line\nk = v\nother bad\n",
    "[a]\nbad line\nk = 1\nk = 2\n",
    "[a]\nÉtat = Été\n",
    "[a]\nk==v\nj::w\nl=:x\n",
    "[a]\nk = 'quoted' \"x\"\n",
    "[a];c\nk=v\n",
    "[a] ;c\nk=v\n",
    ";[a]\n[b]\nk=v\n",
    "[a]\nk = v\n    \n",
    "[a]\nk = \n  \n  x\n",
];

const PYTHON: &str = r#"
import configparser, io, json, sys
out = []
for text in json.load(sys.stdin):
    cp = configparser.ConfigParser(inline_comment_prefixes=";", interpolation=None)
    try:
        cp.read_file(io.StringIO(text, newline=None))
    except configparser.MissingSectionHeaderError as e:
        out.append({"error": e.lineno}); continue
    except configparser.ParsingError as e:
        out.append({"error": e.errors[0][0]}); continue
    except configparser.Error as e:
        out.append({"error": e.lineno}); continue
    secs = []
    if cp.defaults():
        secs.append(["DEFAULT", list(cp.defaults().items())])
    for name in cp.sections():
        secs.append([name, list(cp._sections[name].items())])
    out.append({"sections": secs})
json.dump(out, sys.stdout)
"#;

fn ours(text: &str) -> serde_json::Value {
    match rampart_ini::parse(text) {
        Err(e) => serde_json::json!({ "error": e.line }),
        Ok(doc) => {
            let mut secs = Vec::new();
            let mut others = Vec::new();
            for s in &doc.sections {
                let items: Vec<_> = s
                    .entries
                    .iter()
                    .map(|e| serde_json::json!([e.key, e.value]))
                    .collect();
                if s.name == rampart_ini::DEFAULT_SECTION {
                    if !items.is_empty() {
                        secs.push(serde_json::json!(["DEFAULT", items]));
                    }
                } else {
                    others.push(serde_json::json!([s.name, items]));
                }
            }
            secs.extend(others);
            serde_json::json!({ "sections": secs })
        }
    }
}

#[test]
fn agrees_with_python_configparser() {
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("python3 is needed for the differential test");
    let mut child = Command::new(python)
        .arg("-c")
        .arg(PYTHON)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_string(SNIPPETS).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "python failed");
    let theirs: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(theirs.len(), SNIPPETS.len());
    let mut mismatches = Vec::new();
    for (text, expected) in SNIPPETS.iter().zip(&theirs) {
        let got = ours(text);
        if &got != expected {
            mismatches.push(format!("{text:?}\n  python: {expected}\n  ours:   {got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
