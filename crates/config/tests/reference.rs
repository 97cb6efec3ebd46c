//! Differential tests against fail2ban 1.0.2: the command stream of whole trees,
//! compared line by line with what `fail2ban-client -d` prints.

// Helpers outside #[test] functions panic on setup failures, which is what a test wants.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use rampart_config::{OsFs, ReadOptions, format_stream, read_configuration};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-config-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the reference prints for `-d` on a tree (stdout lines).
fn reference_dump(dir: &Path) -> Vec<String> {
    let out = rampart_reference::fail2ban()
        .script("fail2ban-client")
        .expect("python3 is needed to run the reference")
        .arg("-c")
        .arg(dir)
        .arg("-d")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn our_dump(dir: &Path) -> Vec<String> {
    let config = read_configuration(&OsFs, dir.to_str().unwrap(), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("our read failed: {e}"));
    format_stream(&config.stream)
        .lines()
        .map(String::from)
        .collect()
}

/// `config-error` messages are worded by each implementation; the jail must agree.
fn comparable(line: &str) -> String {
    match line.strip_prefix("['config-error', ") {
        Some(rest) => {
            let after = rest.split_once("Jail ").map_or("", |(_, a)| a);
            let jail: String = after
                .trim_start_matches(['\\', '\''])
                .chars()
                .take_while(|&c| c != '\'' && c != '\\')
                .collect();
            format!("config-error {jail}")
        }
        None => line.to_string(),
    }
}

/// Compares line by line; returns the number of matching lines.
fn compare(name: &str, theirs: &[String], ours: &[String]) -> usize {
    let matching = theirs
        .iter()
        .zip(ours)
        .filter(|(a, b)| comparable(a) == comparable(b))
        .count();
    let first_diff = theirs
        .iter()
        .zip(ours)
        .position(|(a, b)| comparable(a) != comparable(b));
    eprintln!(
        "{name}: {matching} of {} reference lines match ({} ours)",
        theirs.len(),
        ours.len()
    );
    if let Some(i) = first_diff {
        panic!(
            "{name}: first difference at line {}:\nreference: {}\nours:      {}",
            i + 1,
            theirs[i],
            ours[i]
        );
    }
    assert_eq!(theirs.len(), ours.len(), "{name}: line counts differ");
    matching
}

fn jail_names(jail_conf: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(jail_conf).unwrap();
    let doc = rampart_ini::parse(&text).unwrap();
    doc.sections
        .iter()
        .map(|s| s.name.clone())
        .filter(|n| n != "INCLUDES" && n != "DEFAULT")
        .collect()
}

#[test]
fn stock_tree_with_every_jail_enabled() {
    let reference = rampart_reference::fail2ban();
    let dir = temp_dir("stock");
    copy_tree(&reference.config_dir(), &dir);
    let mut local = String::new();
    for name in jail_names(&dir.join("jail.conf")) {
        local.push_str(&format!("[{name}]\nenabled = true\n\n"));
    }
    std::fs::write(dir.join("jail.local"), local).unwrap();
    let theirs = reference_dump(&dir);
    let ours = our_dump(&dir);
    let n = compare("stock", &theirs, &ours);
    assert!(n > 1000);
    let config = read_configuration(&OsFs, dir.to_str().unwrap(), &ReadOptions::default()).unwrap();
    let unknown: Vec<String> = config
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("unknown option"))
        .map(|w| w.to_string())
        .collect();
    assert!(
        unknown.is_empty(),
        "false alarms on the stock tree: {unknown:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debian_test_tree() {
    let reference = rampart_reference::fail2ban();
    let dir = temp_dir("testcfg");
    copy_tree(&reference.test_config_dir(), &dir);
    let theirs = reference_dump(&dir);
    let ours = our_dump(&dir);
    let n = compare("tests/config", &theirs, &ours);
    assert!(n > 20);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Copies `tests/data/<name>` over `dir`, with `LOGDIR` replaced by `logdir`.
fn overlay(name: &str, dir: &Path, logdir: &Path) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let target = dir.join(path.strip_prefix(&data).unwrap());
            if path.is_dir() {
                std::fs::create_dir_all(&target).unwrap();
                stack.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                std::fs::write(target, text.replace("LOGDIR", logdir.to_str().unwrap())).unwrap();
            }
        }
    }
}

#[test]
fn stock_tree_with_overlays_and_arguments() {
    let reference = rampart_reference::fail2ban();
    let root = temp_dir("overlays");
    let dir = root.join("etc");
    let logs = root.join("log");
    copy_tree(&reference.config_dir(), &dir);
    std::fs::create_dir_all(logs.join("nginx")).unwrap();
    for f in [
        "auth.log",
        "secure1.log",
        "secure2.log",
        "nginx/a.log",
        "nginx/b.log",
    ] {
        std::fs::write(logs.join(f), "").unwrap();
    }
    let mut local = String::new();
    for name in jail_names(&dir.join("jail.conf")) {
        local.push_str(&format!("[{name}]\nenabled = true\n\n"));
    }
    std::fs::write(dir.join("jail.local"), local).unwrap();
    overlay("overlays", &dir, &logs);
    let theirs = reference_dump(&dir);
    let ours = our_dump(&dir);
    let n = compare("overlays", &theirs, &ours);
    assert!(n > 1000);
    let _ = std::fs::remove_dir_all(&root);
}

/// Small trees written for one rule each. `LOGDIR` stands for a directory with
/// `a.log`. When the reference refuses a tree, we must refuse it too.
const CASES: &[(&str, &[(&str, &str)])] = &[
    (
        "defaults without fail2ban.conf, failed conversions, filter without Definition",
        &[
            (
                "jail.conf",
                "[DEFAULT]\nmaxretry = abc\nlogpath = LOGDIR/a.log\n[j]\nenabled = true\nfilter = only-init\naction = no-def[x=1]\n",
            ),
            (
                "filter.d/only-init.conf",
                "[Init]\nfailregex = never used\ndate = quirk\n",
            ),
            ("action.d/no-def.conf", "[Init]\ny = <x>\n"),
        ],
    ),
    (
        "conditional sections, known values and tags",
        &[
            (
                "fail2ban.conf",
                "[Definition]\nloglevel = 7\nlogtarget = SYSLOG\n",
            ),
            (
                "jail.conf",
                "[DEFAULT]\nchain = <known/chain>\nlogpath = LOGDIR/a.log\n[j]\nenabled = true\nfilter = f[mode=extra]\nfailregex = %(known/failregex)s\n            jail <HOST> %(known/_x)s\naction = a[port=\"1,2\", chain=\"%(chain)s\"]\n         a[name=j2, actname=second]\n",
            ),
            (
                "filter.d/f.conf",
                "[INCLUDES]\nafter = f-extra.conf\n[Init]\nmode = normal\n[Definition]\n_x = X<mode>\nfailregex = ^<_x> <HOST>$\n            ^<cond_<mode>>$\ncond_normal = N\ncond_extra = E\nmaxlines = 2x\n",
            ),
            (
                "filter.d/f-extra.conf",
                "[Definition]\nprefregex = ^pre <F-CONTENT>.+</F-CONTENT>$\n",
            ),
            (
                "action.d/a.conf",
                "[Definition]\nactionban = ban <ip> -j <blocktype> <chain> <port> <maxretry> <unknown>\nactionstart = <known/chain> <bantime>\nnorestored = yes\n[Init]\nchain = INPUT\nblocktype = REJECT\nport = 0\n[Init?family=inet6]\nblocktype = REJECT6\n",
            ),
        ],
    ),
    (
        "disabled jails are not interpolated beyond enabled/backend/filter",
        &[(
            "jail.conf",
            "[off]\nenabled = false\naction = %(nowhere)s\n[on]\nenabled = true\nfilter =\naction =\nlogpath = LOGDIR/a.log\n",
        )],
    ),
    (
        "multi-line actions with brackets across lines, python action",
        &[
            (
                "jail.conf",
                "[j]\nenabled = true\nlogpath = LOGDIR/*.log\n  LOGDIR/none*.log tail\naction = a[x=\"1\n  2\", y=3]\n  b.py[k=v]  a[name=other]\n  a[x=')']\n",
            ),
            ("action.d/a.conf", "[Definition]\nactionban = <x> <y>\n"),
        ],
    ),
    (
        "bad interpolation fails the read",
        &[(
            "jail.conf",
            "[DEFAULT]\nx = %(nope)s\n[a]\nenabled = true\nfilter = %(x)s\n",
        )],
    ),
    (
        "a syntax error anywhere fails the read",
        &[
            (
                "jail.conf",
                "[a]\nenabled = true\nfilter = a\nlogpath = LOGDIR/a.log\n",
            ),
            ("filter.d/a.conf", "[Definition]\nfailregex\n"),
        ],
    ),
    (
        "self-referencing tags fail the read",
        &[
            (
                "jail.conf",
                "[a]\nenabled = true\nfilter =\naction = s\nlogpath = LOGDIR/a.log\n",
            ),
            (
                "action.d/s.conf",
                "[Definition]\nactionban = <x>\n[Init]\nx = <y>\ny = <x>\n",
            ),
        ],
    ),
    (
        "interpolation deeper than ten levels fails the read",
        &[(
            "jail.conf",
            "[DEFAULT]\na0 = x\na1 = %(a0)s\na2 = %(a1)s\na3 = %(a2)s\na4 = %(a3)s\na5 = %(a4)s\na6 = %(a5)s\na7 = %(a6)s\na8 = %(a7)s\na9 = %(a8)s\na10 = %(a9)s\na11 = %(a10)s\n[a]\nenabled = true\nfilter = %(a11)s\n",
        )],
    ),
    (
        "a lone percent sign fails the read",
        &[("jail.conf", "[a]\nenabled = true\nfilter = 100%\n")],
    ),
    (
        "an unknown log level fails the read",
        &[
            ("fail2ban.conf", "[Definition]\nloglevel = LOUD\n"),
            ("jail.conf", "[a]\nenabled = false\n"),
        ],
    ),
];

#[test]
fn small_trees_agree_with_the_reference() {
    let mut total = 0;
    for (i, (what, files)) in CASES.iter().enumerate() {
        let root = temp_dir(&format!("case{i}"));
        let dir = root.join("etc");
        let logs = root.join("log");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::write(logs.join("a.log"), "").unwrap();
        for (path, text) in *files {
            let target = dir.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text.replace("LOGDIR", logs.to_str().unwrap())).unwrap();
        }
        let theirs = reference_dump(&dir);
        let ours = read_configuration(&OsFs, dir.to_str().unwrap(), &ReadOptions::default());
        if theirs.first().is_some_and(|l| l.starts_with("ERROR")) {
            assert!(
                ours.is_err(),
                "{what}: the reference fails, we read {ours:?}"
            );
            eprintln!("{what}: both fail ({})", ours.unwrap_err());
        } else {
            let config = ours.unwrap_or_else(|e| panic!("{what}: {e}"));
            let lines: Vec<String> = format_stream(&config.stream)
                .lines()
                .map(String::from)
                .collect();
            total += compare(what, &theirs, &lines);
        }
        let _ = std::fs::remove_dir_all(&root);
    }
    assert!(total > 30);
}

/// Runs a Python snippet with the reference's modules importable; it reads JSON on
/// stdin and writes JSON on stdout.
fn python_json(code: &str, input: &str) -> String {
    use std::io::Write;
    let reference = rampart_reference::fail2ban();
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(code)
        .env("PYTHONPATH", reference.python_path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    String::from_utf8(out.stdout).unwrap()
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const ARG_SAMPLES: &[&str] = &[
    "sshd",
    "sshd[mode=aggressive]",
    "a[x=1, y=\"2, 3\", z='4]5']",
    "a[x=1][y=2]  ",
    "a[x=1] [y=2]",
    "a[x = 1]",
    "a[x=1,]",
    "a[x=1, ]",
    "a[x=\"1\"y]",
    "a[x=1]b",
    "a[x]",
    "a[",
    "[x=1]",
    "a]b",
    "a[x=\"unclosed]",
    "a[x=1\n, y=2]",
    "a[x=\"1\"\n]",
    "a[k.e-y_1=v]",
    "a[é=ü]",
    "name with space[x=1]",
    "a[x=[1], y=2]",
    "a[x=1]]",
];

const SPLIT_SAMPLES: &[&str] = &[
    "a b c",
    "a[x=1] b[y=\"1 2\"]\n  c",
    "iptables-multiport[name=SSH, port=\"ssh\", protocol=tcp]\n     sendmail-whois[name=SSH, dest=\"a, b\"]",
    "a [x=1]",
    "a[x=1] [y]",
    "a[x=\"1\"b] c",
    "a[x=1 y] z",
    "a[x=']' ] b",
    "a[x=\"1\"][y='2'] \n\n b[z=3]",
    "a[ x=1 , y=2 ] b",
    "a[x=1,,y=2] b",
    "a[x=1\n  2] b",
    "\n  a\n  b[k=v]\n",
    "a[x=\"1] b",
    "a[x=1]b[y=2] c",
];

#[test]
fn arguments_agree_with_fail2ban_helpers() {
    let input = format!(
        "[[{}], [{}]]",
        ARG_SAMPLES
            .iter()
            .map(|s| json_str(s))
            .collect::<Vec<_>>()
            .join(","),
        SPLIT_SAMPLES
            .iter()
            .map(|s| json_str(s))
            .collect::<Vec<_>>()
            .join(",")
    );
    let code = r#"
import json, sys
from fail2ban.helpers import extractOptions, splitWithOptions
args, splits = json.load(sys.stdin)
out = []
for s in args:
    try:
        n, o = extractOptions(s)
        out.append([n, list(o.items())])
    except ValueError:
        out.append(None)
out2 = [splitWithOptions(s) for s in splits]
print(json.dumps([out, out2]))
"#;
    let theirs = python_json(code, &input);
    let mut ours = String::from("[[");
    for (i, s) in ARG_SAMPLES.iter().enumerate() {
        if i > 0 {
            ours.push_str(", ");
        }
        match rampart_config::extract_options(s) {
            Ok((name, args)) => {
                let items: Vec<String> = args
                    .iter()
                    .map(|(k, v)| format!("[{}, {}]", json_str(k), json_str(v)))
                    .collect();
                ours.push_str(&format!("[{}, [{}]]", json_str(&name), items.join(", ")));
            }
            Err(_) => ours.push_str("null"),
        }
    }
    ours.push_str("], [");
    for (i, s) in SPLIT_SAMPLES.iter().enumerate() {
        if i > 0 {
            ours.push_str(", ");
        }
        let parts: Vec<String> = rampart_config::split_with_options(s)
            .iter()
            .map(|p| json_str(p))
            .collect();
        ours.push_str(&format!("[{}]", parts.join(", ")));
    }
    ours.push_str("]]");
    // Python escapes non-ASCII in JSON; compare after decoding both the same way.
    let decode = |s: &str| {
        python_json(
            "import json,sys; print(json.dumps(json.load(sys.stdin)))",
            s,
        )
    };
    assert_eq!(decode(&ours).trim(), theirs.trim());
}

const TAG_SAMPLES: &[&str] = &[
    r#"{"a": "<b>_3", "b": "<c>", "c": "3"}"#,
    r#"{"logtype": "file", "lt_file": "F", "p": "<lt_<logtype>>", "q": "<p><p>"}"#,
    r#"{"x": "<HOST> <ip> < b > <a b> <>", "ip": "1.2.3.4"}"#,
    r#"{"a": "<b><b>", "b": "<c><c>", "c": "<d><d>", "d": "z"}"#,
    r#"{"a": "x<a>"}"#,
    r#"{"a": "<b>", "b": "<a>"}"#,
    r#"{"t": "<x>", "x": "v4", "x?family=inet6": "v6"}"#,
    r#"{"a": "<b>", "b": "<<c>>", "c": "d", "d": "D"}"#,
    r#"{"a": "<b> <c>", "b": "1", "c": "<b><b>"}"#,
];

#[test]
fn tags_agree_with_fail2ban_helpers() {
    let input = format!("[{}]", TAG_SAMPLES.join(","));
    let code = r#"
import json, sys
from fail2ban.helpers import substituteRecursiveTags
out = []
for tags in json.load(sys.stdin):
    res = []
    for cond in ("", "family=inet6"):
        try:
            res.append(substituteRecursiveTags(tags, cond))
        except ValueError:
            res.append(None)
    out.append(res)
print(json.dumps(out))
"#;
    let theirs = python_json(code, &input);
    let mut ours = Vec::new();
    for sample in TAG_SAMPLES {
        let items: Vec<(String, String)> = python_json(
            "import json,sys; print('\\n'.join(k+'\\t'+v for k,v in json.load(sys.stdin).items()))",
            sample,
        )
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
        let map: indexmap::IndexMap<String, String> = items.into_iter().collect();
        let mut res = Vec::new();
        for cond in [None, Some("family=inet6")] {
            let opts = rampart_config::TagOptions {
                conditional: cond,
                ignore: None,
            };
            res.push(
                match rampart_config::substitute_tags(&map, opts, &mut |_| None) {
                    Ok(m) => format!(
                        "{{{}}}",
                        m.iter()
                            .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Err(_) => "null".to_string(),
                },
            );
        }
        ours.push(format!("[{}]", res.join(", ")));
    }
    let ours = format!("[{}]", ours.join(", "));
    assert_eq!(ours.trim(), theirs.trim());
}

/// Every stock filter, read the way fail2ban-regex reads it, by both implementations.
#[test]
fn every_stock_filter_reads_like_fail2ban_regex() {
    let reference = rampart_reference::fail2ban();
    let basedir = reference.config_dir();
    let mut specs: Vec<String> = std::fs::read_dir(basedir.join("filter.d"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".conf").map(String::from)
        })
        .filter(|n| n != "common" && !n.ends_with("-common"))
        .collect();
    specs.sort();
    specs.extend(
        [
            "sshd[mode=aggressive]",
            "sshd[mode=ddos]",
            "postfix[mode=more]",
            "dovecot[mode=aggressive]",
        ]
        .map(String::from),
    );
    let input = format!(
        "[{}, {}]",
        json_str(basedir.to_str().unwrap()),
        format_args!(
            "[{}]",
            specs
                .iter()
                .map(|s| json_str(s))
                .collect::<Vec<_>>()
                .join(",")
        )
    );
    let code = r#"
import json, sys
from fail2ban.client.filterreader import FilterReader
from fail2ban.helpers import extractOptions
basedir, specs = json.load(sys.stdin)
out = []
for spec in specs:
    name, opts = extractOptions(spec)
    r = FilterReader(name, 'fail2ban-regex-jail', opts, share_config={}, basedir=basedir)
    assert r.read()
    r.applyAutoOptions('auto')
    r.getOptions(None)
    f = {"prefregex": None, "failregex": [], "ignoreregex": [], "datepattern": None,
         "maxlines": None, "usedns": None, "journalmatch": []}
    for c in r.convert():
        vals = c[3] if c[0] == 'multi-set' else c[3:]
        k = c[2]
        if k in ('prefregex', 'datepattern', 'usedns', 'maxlines'): f[k] = vals[0]
        elif k == 'addfailregex': f['failregex'] += vals
        elif k == 'addignoreregex': f['ignoreregex'] += vals
        elif k == 'addjournalmatch': f['journalmatch'].append(vals)
    out.append(f)
print(json.dumps(out))
"#;
    let theirs = python_json(code, &input);
    let vars = indexmap::IndexMap::new();
    let opt = |v: &Option<String>| v.as_deref().map_or("null".to_string(), json_str);
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|s| json_str(s)).collect::<Vec<_>>().join(", ")
        )
    };
    let mut ours = Vec::new();
    for spec in &specs {
        let request = rampart_config::FilterRequest {
            spec,
            jail_name: "fail2ban-regex-jail",
            jail_vars: &vars,
            backend: "auto",
        };
        let (f, _) = rampart_config::read_filter(&OsFs, basedir.to_str().unwrap(), &request)
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        ours.push(format!(
            "{{\"prefregex\": {}, \"failregex\": {}, \"ignoreregex\": {}, \"datepattern\": {}, \"maxlines\": {}, \"usedns\": {}, \"journalmatch\": [{}]}}",
            opt(&f.prefregex),
            list(&f.failregex),
            list(&f.ignoreregex),
            opt(&f.datepattern),
            f.maxlines.map_or("null".to_string(), |m| m.to_string()),
            opt(&f.usedns),
            f.journalmatch.iter().map(|m| list(m)).collect::<Vec<_>>().join(", ")
        ));
    }
    let ours = format!("[{}]", ours.join(", "));
    let decode = |s: &str| {
        python_json(
            "import json,sys; print(json.dumps(json.load(sys.stdin)))",
            s,
        )
    };
    let (ours, theirs) = (decode(&ours), decode(&theirs));
    assert_eq!(ours.trim(), theirs.trim());
    eprintln!("{} filters read identically", specs.len());
}
