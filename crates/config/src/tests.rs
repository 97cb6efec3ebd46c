//! Reader semantics on in-memory trees.

use indexmap::IndexMap;

use super::*;

fn read(fs: &MemFs) -> Configuration {
    read_configuration(fs, "/etc/f2b", &ReadOptions::default()).unwrap()
}

fn lines(config: &Configuration) -> Vec<String> {
    format_stream(&config.stream)
        .lines()
        .map(String::from)
        .collect()
}

fn jail<'a>(config: &'a Configuration, name: &str) -> &'a Jail {
    config.jails.iter().find(|j| j.name == name).unwrap()
}

const FILTER: &str = "[INCLUDES]\nbefore = common.conf\n\
[Init]\nmode = normal\n\
[Definition]\n_daemon = sshd\n\
failregex = ^<pre> fail <HOST> <m_<mode>>$\n            ^second <HOST>$\n\
m_normal = N\nm_aggressive = A\n\
datepattern = {^LN-BEG}%%Y\n\
journalmatch = _SYSTEMD_UNIT=sshd.service + _COMM=sshd\n";

fn tree() -> MemFs {
    MemFs::new()
        .file("/var/log/auth.log", "")
        .file("/etc/f2b/fail2ban.conf", "[Definition]\nloglevel = INFO\n")
        .file(
            "/etc/f2b/jail.conf",
            "[DEFAULT]\nfilter = %(__name__)s[mode=%(mode)s]\nmode = normal\n\
             maxretry = 5\nbanaction = fw\naction = %(banaction)s[port=\"%(port)s\"]\n\
             port = 0:65535\nlogpath = /var/log/auth.log\nenabled = false\n\
             [sshd]\nport = ssh\n[off]\nfilter = missing\n",
        )
        .file(
            "/etc/f2b/jail.local",
            "[sshd]\nenabled = true\nmode = aggressive\n",
        )
        .file(
            "/etc/f2b/filter.d/common.conf",
            "[DEFAULT]\npre = <_daemon>\\[\\d+\\]:\n",
        )
        .file("/etc/f2b/filter.d/sshd.conf", FILTER)
        .file(
            "/etc/f2b/action.d/fw.conf",
            "[Definition]\nactionban = fw add <ip> <port> <chain> -j <blocktype>\n\
             [Init]\nchain = INPUT\nblocktype = REJECT\n\
             [Init?family=inet6]\nblocktype = REJECT6\n",
        )
}

#[test]
fn a_jail_resolves_filter_action_and_logs() {
    let config = read(&tree());
    assert_eq!(config.jails.len(), 1, "disabled jails are not listed");
    let sshd = jail(&config, "sshd");
    let filter = sshd.filter.as_ref().unwrap();
    assert_eq!(
        filter.failregex,
        ["^sshd\\[\\d+\\]: fail <HOST> A$", "^second <HOST>$"]
    );
    assert_eq!(filter.datepattern.as_deref(), Some("{^LN-BEG}%Y"));
    assert_eq!(
        filter.journalmatch,
        [["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd"]]
    );
    assert_eq!(filter.logtype.as_deref(), Some("file"));
    assert_eq!(filter.file, "/etc/f2b/filter.d/sshd.conf");
    assert_eq!(filter.args["mode"], "aggressive");
    assert_eq!(sshd.backend, "auto");
    assert_eq!(
        sshd.logpaths,
        [LogPath {
            path: "/var/log/auth.log".into(),
            position: "head".into()
        }]
    );
    let action = &sshd.actions[0];
    assert_eq!(action.name, "fw");
    let prop = |k: &str| {
        action
            .properties
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    // <blocktype> has a conditional variant, so it stays for run time.
    assert_eq!(
        prop("actionban"),
        Some(Value::from("fw add <ip> ssh INPUT -j <blocktype>"))
    );
    assert_eq!(prop("blocktype?family=inet6"), Some(Value::from("REJECT6")));
    assert_eq!(prop("name"), Some(Value::from("sshd")));
    let stream = lines(&config);
    assert_eq!(stream.last().unwrap(), "['start', 'sshd']");
    assert!(stream.contains(&"['add', 'sshd', 'auto']".to_string()));
    assert!(stream.contains(&"['set', 'sshd', 'maxretry', 5]".to_string()));
}

#[test]
fn jail_values_replace_filter_values_and_known_extends_them() {
    let fs = tree().file(
        "/etc/f2b/jail.d/x.local",
        "[sshd]\nfailregex = %(known/failregex)s\n  ^jail <HOST>$\ndatepattern = %%H\n",
    );
    let config = read(&fs);
    let filter = jail(&config, "sshd").filter.as_ref().unwrap();
    assert_eq!(filter.failregex.len(), 3);
    assert_eq!(filter.failregex[2], "^jail <HOST>$");
    assert_eq!(filter.datepattern.as_deref(), Some("%H"));
}

#[test]
fn a_broken_filter_or_action_skips_only_its_jail() {
    let fs = tree().file(
        "/etc/f2b/jail.local",
        "[sshd]\nenabled = true\n[off]\nenabled = true\n[bad]\nenabled = true\nfilter = sshd\naction = x[oops\n",
    );
    let config = read(&fs);
    let errors: Vec<_> = config
        .jails
        .iter()
        .filter_map(|j| {
            j.config_error
                .as_ref()
                .map(|e| (j.name.as_str(), e.as_str()))
        })
        .collect();
    assert_eq!(errors.len(), 2);
    assert!(
        errors[0]
            .1
            .contains("unable to read the filter \"missing\"")
    );
    assert!(errors[1].1.contains("invalid action definition"));
    let stream = lines(&config);
    assert!(
        stream
            .iter()
            .any(|l| l.starts_with("['config-error', ") && l.contains("Jail \\'off\\' skipped"))
    );
    assert!(!stream.contains(&"['start', 'off']".to_string()));
    assert!(stream.contains(&"['start', 'sshd']".to_string()));
}

#[test]
fn missing_logs_warn_or_fail() {
    let fs = tree().file("/etc/f2b/jail.d/x.local", "[sshd]\nlogpath = /nope/*.log\n");
    let config = read(&fs);
    assert!(jail(&config, "sshd").logpaths.is_empty());
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.to_string() == "[sshd] have not found any log file")
    );
    let strict = ReadOptions {
        missing_logs: MissingLogs::Error,
        ..ReadOptions::default()
    };
    let err = read_configuration(&fs, "/etc/f2b", &strict).unwrap_err();
    assert!(matches!(err, ConfigError::NoLogFile { .. }));
}

#[test]
fn systemd_backend_means_journal_and_no_logpath() {
    let fs = tree().file(
        "/etc/f2b/jail.d/x.local",
        "[sshd]\nbackend = systemd[journalflags=1]\n",
    );
    let config = read(&fs);
    let sshd = jail(&config, "sshd");
    assert_eq!(sshd.backend, "systemd[journalflags=1]");
    assert!(sshd.logpaths.is_empty());
    assert_eq!(
        sshd.filter.as_ref().unwrap().logtype.as_deref(),
        Some("journal")
    );
}

#[test]
fn errors_name_file_and_line() {
    let fs = tree().file(
        "/etc/f2b/jail.local",
        "[sshd]\nenabled = true\n\naction = %(foo)s\n",
    );
    let err = read_configuration(&fs, "/etc/f2b", &ReadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "jail.local:4: [sshd] action: unknown interpolation %(foo)s"
    );
    let fs = tree().file("/etc/f2b/jail.d/a.conf", "[sshd]\nk = 1\nk = 2\n");
    let err = read_configuration(&fs, "/etc/f2b", &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().starts_with("jail.d/a.conf:3: "), "{err}");
}

#[test]
fn server_settings_defaults_and_overrides() {
    let fs = tree().file(
        "/etc/f2b/fail2ban.local",
        "[Definition]\ndbmaxmatches = 30\nlogtarget = SYSLOG\n[Thread]\nstacksize = 64\n",
    );
    let (server, warnings) = read_server_settings(&fs, "/etc/f2b").unwrap();
    assert_eq!(server.loglevel, "INFO");
    assert_eq!(server.logtarget, "SYSLOG");
    assert_eq!(server.dbmaxmatches, Some(30));
    assert_eq!(server.thread_stacksize, Some(64));
    assert_eq!(server.socket, "/var/run/fail2ban/fail2ban.sock");
    assert!(warnings.iter().any(|w| w.message.contains("socket")));
    assert_eq!(
        format_command(&server.stream[0]),
        "['set', 'thread', {'stacksize': 64}]"
    );
}

#[test]
fn no_configuration_at_all() {
    let fs = MemFs::new().dir("/etc/f2b");
    let config = read(&fs);
    assert!(config.jails.is_empty());
    assert!(config.warnings.iter().any(|w| {
        w.message
            .contains("found no accessible config files for \"jail\"")
    }));
    let err = read_configuration(&MemFs::new(), "/etc/f2b", &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, ConfigError::NoBaseDir(_)));
}

#[test]
fn read_filter_by_name_and_by_path() {
    let fs = tree().file(
        "/srv/other/my.conf",
        "[Definition]\nfailregex = ^my <HOST> <arg>$\n",
    );
    let vars = IndexMap::new();
    let request = |spec| FilterRequest {
        spec,
        jail_name: "fail2ban-regex-jail",
        jail_vars: &vars,
        backend: "auto",
    };
    let (f, _) = read_filter(&fs, "/etc/f2b", &request("sshd[mode=aggressive]")).unwrap();
    assert_eq!(f.name, "sshd");
    assert_eq!(f.failregex[0], "^sshd\\[\\d+\\]: fail <HOST> A$");
    let (f, _) = read_filter(&fs, "/etc/f2b", &request("/etc/f2b/filter.d/sshd.conf")).unwrap();
    assert_eq!(f.failregex[0], "^sshd\\[\\d+\\]: fail <HOST> N$");
    let (f, _) = read_filter(&fs, "/etc/f2b", &request("/srv/other/my.conf[arg=1]")).unwrap();
    assert_eq!(f.failregex, ["^my <HOST> 1$"]);
    assert_eq!(f.file, "/srv/other/my.conf");
    assert!(matches!(
        read_filter(&fs, "/etc/f2b", &request("^Failed .* <HOST>$")),
        Err(ConfigError::NotFound { .. })
    ));
    assert!(matches!(
        read_filter(&fs, "/etc/f2b", &request("nosuchfilter")),
        Err(ConfigError::NotFound { .. })
    ));
    let mut vars = IndexMap::new();
    vars.insert("failregex".to_string(), "^from jail <HOST>$".to_string());
    let req = FilterRequest {
        spec: "sshd",
        jail_name: "j",
        jail_vars: &vars,
        backend: "systemd",
    };
    let (f, _) = read_filter(&fs, "/etc/f2b", &req).unwrap();
    assert!(f.failregex.is_empty(), "jail values replace the filter's");
    assert_eq!(f.logtype.as_deref(), Some("journal"));
}

#[test]
fn conditional_keys_follow_the_family() {
    let tags: IndexMap<String, String> = [
        ("cmd", "ipt <b>"),
        ("b", "REJECT"),
        ("b?family=inet6", "REJECT6"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let resolve = |family| {
        substitute_tags(
            &tags,
            TagOptions {
                conditional: family,
                ignore: None,
            },
            &mut |_| None,
        )
        .unwrap()["cmd"]
            .clone()
    };
    assert_eq!(resolve(None), "ipt REJECT");
    assert_eq!(resolve(Some("family=inet6")), "ipt REJECT6");
}

#[test]
fn unknown_jail_options_are_warned_about() {
    let fs = tree().file(
        "/etc/f2b/jail.d/x.local",
        "[sshd]\nmaxretries = 3\nport = 22\n",
    );
    let config = read(&fs);
    let unknown: Vec<String> = config
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("unknown option"))
        .map(|w| w.to_string())
        .collect();
    assert_eq!(
        unknown,
        ["jail.d/x.local:2: [sshd] unknown option \"maxretries\" is ignored"]
    );
}

/// Hostile text must never panic: pseudo-random strings over the dialect's special
/// characters go through every parser.
#[test]
fn no_panic_on_hostile_text() {
    const ALPHABET: &[char] = &[
        '[', ']', '=', ':', '%', '(', ')', 's', '<', '>', '/', ' ', '\n', '\t', ';', '#', '"',
        '\'', ',', 'a', 'k', 'é', '\u{3000}', '?', '*', '!', '-', '.', '\\', '\r', '\u{feff}',
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let len = (next() % 40) as usize;
        let text: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        let _ = rampart_ini::parse(&text);
        let _ = extract_options(&text);
        let _ = split_with_options(&text);
        let _ = shlex_split(&text);
        let _ = Pattern::new(&text).matches(&text);
        let _ = looks_like_filter_name(&text);
        let tags: IndexMap<String, String> = [
            ("a".to_string(), text.clone()),
            ("b".to_string(), "<a>".to_string()),
        ]
        .into();
        let _ = substitute_tags(&tags, TagOptions::default(), &mut |_| None);
        let fs = tree()
            .file(
                "/etc/f2b/jail.local",
                &format!("[sshd]\nenabled = true\naction = {text}\n"),
            )
            .file(
                "/etc/f2b/filter.d/sshd.local",
                &format!("[Definition]\nx = {text}\n"),
            );
        let _ = read_configuration(&fs, "/etc/f2b", &ReadOptions::default());
        let _ = read_filter(
            &fs,
            "/etc/f2b",
            &FilterRequest {
                spec: &text,
                jail_name: "j",
                jail_vars: &IndexMap::new(),
                backend: "auto",
            },
        );
    }
}
