//! How `fail2ban-client` turns a reply into text: the `status` trees, the "Current …"
//! answers, lists drawn with `|-` and `` `- ``, and Python's `print()` for the rest.
//!
//! The choice depends on the command that was sent, word by word, exactly as the
//! Python client decides it, so the same reply prints the same for either client.

use crate::value::{PyException, PyValue};

/// The text `fail2ban-client` prints for a successful reply to `command`.
///
/// A reply whose shape does not fit the command prints as the Python client's
/// fallback does: the reply's `repr()` twice (its warning goes to standard error; see
/// [`beautify_strict`] to tell the cases apart).
pub fn beautify(command: &[String], response: &PyValue) -> String {
    beautify_strict(command, response).unwrap_or_else(|| fallback(response))
}

/// What the Python client prints when its formatting fails on an odd reply.
pub fn fallback(response: &PyValue) -> String {
    let r = response.repr();
    format!("{r}{r}")
}

/// Like [`beautify`], but `None` when the reply does not have the shape the command
/// calls for.
pub fn beautify_strict(command: &[String], response: &PyValue) -> Option<String> {
    let word = |i: usize| command.get(i).map(String::as_str);
    let text = |v: &PyValue| v.as_str().map(str::to_string);
    match word(0) {
        Some("ping") => return Some(format!("Server replied: {}", text(response)?)),
        Some("version") => return Some(response.to_string()),
        Some("start") => return Some("Jail started".into()),
        Some("stop") => {
            return Some(match (command.len(), response) {
                (1, PyValue::None) => "Shutdown successful".into(),
                (_, PyValue::None) => "Jail stopped".into(),
                _ => response.to_string(),
            });
        }
        Some("add") => return Some(format!("Added jail {}", text(response)?)),
        Some("flushlogs") => return Some(format!("logs: {}", text(response)?)),
        Some("echo") => {
            let words: Option<Vec<String>> = seq(response)?.iter().map(text).collect();
            return Some(words?.join(" "));
        }
        Some("status") => return status(command, response),
        _ => {}
    }
    let Some(second) = word(1) else {
        return Some(response.to_string());
    };
    match second {
        "syslogsocket" => {
            return Some(format!("Current syslog socket is:\n`- {}", text(response)?));
        }
        "logtarget" => {
            return Some(format!(
                "Current logging target is:\n`- {}",
                text(response)?
            ));
        }
        "loglevel" => {
            let level = match response {
                PyValue::Int(n) => PyValue::Str(level_name(*n)),
                other => other.clone(),
            };
            return Some(format!("Current logging level is {}", level.repr()));
        }
        "dbfile" => {
            return Some(match response {
                PyValue::None => "Database currently disabled".into(),
                other => format!("Current database file is:\n`- {}", text(other)?),
            });
        }
        "dbpurgeage" => {
            let seconds = match response {
                PyValue::None => return Some("Database currently disabled".into()),
                PyValue::Int(n) => *n,
                PyValue::Bool(b) => i64::from(*b),
                // `%i` truncates a float toward zero.
                PyValue::Float(x) if x.is_finite() => *x as i64,
                _ => return None,
            };
            return Some(format!(
                "Current database purge age is:\n`- {seconds}seconds"
            ));
        }
        _ => {}
    }
    let Some(third) = word(2) else {
        return Some(response.to_string());
    };
    let jail = second;
    Some(match third {
        "logpath" | "addlogpath" | "dellogpath" => tree(
            response,
            "No file is currently monitored",
            "Current monitored log file(s):",
        )?,
        "logencoding" => format!("Current log encoding is set to:\n{}", text(response)?),
        "journalmatch" | "addjournalmatch" | "deljournalmatch" => {
            let matches = seq(response)?;
            if matches.is_empty() {
                "No journal match filter set".into()
            } else {
                let groups: Option<Vec<String>> = matches
                    .iter()
                    .map(|m| {
                        let words: Option<Vec<String>> = seq(m)?.iter().map(text).collect();
                        Some(words?.join(" "))
                    })
                    .collect();
                format!("Current match filter:\n{}", groups?.join(" + "))
            }
        }
        "datepattern" => {
            let shown = match response {
                PyValue::None => "Not set/required".to_string(),
                PyValue::Tuple(pair) | PyValue::List(pair) if pair.len() >= 2 => {
                    match (&pair[0], response) {
                        (PyValue::None, _) => pair[1].to_string(),
                        (_, PyValue::Tuple(_)) if pair.len() == 2 => {
                            format!("{} ({})", pair[0], pair[1])
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            };
            format!("Current date pattern set to: {shown}")
        }
        "ignoreip" | "addignoreip" | "delignoreip" => tree(
            response,
            "No IP address/network is ignored",
            "These IP addresses/networks are ignored:",
        )?,
        "failregex" | "addfailregex" | "delfailregex" | "ignoreregex" | "addignoreregex"
        | "delignoreregex" => {
            let regexes: Option<Vec<String>> = seq(response)?.iter().map(text).collect();
            let regexes = regexes?;
            if regexes.is_empty() {
                "No regular expression is defined".into()
            } else {
                let mut out = String::from("The following regular expression are defined:");
                for (n, r) in regexes.iter().enumerate() {
                    let branch = if n + 1 == regexes.len() { "`-" } else { "|-" };
                    out.push_str(&format!("\n{branch} [{n}]: {r}"));
                }
                out
            }
        }
        "actions" => {
            let names: Option<Vec<String>> = seq(response)?.iter().map(text).collect();
            let names = names?;
            if names.is_empty() {
                format!("No actions for jail {jail}")
            } else {
                format!(
                    "The jail {jail} has the following actions:\n{}",
                    names.join(", ")
                )
            }
        }
        kind @ ("actionproperties" | "actionmethods") => {
            let what = if kind == "actionproperties" {
                "properties"
            } else {
                "methods"
            };
            let names: Option<Vec<String>> = seq(response)?.iter().map(text).collect();
            let names = names?;
            let action = word(3)?;
            if names.is_empty() {
                format!("No {what} for jail {jail} action {action}")
            } else {
                format!(
                    "The jail {jail} action {action} has the following {what}:\n{}",
                    names.join(", ")
                )
            }
        }
        "banip" if word(0) == Some("get") => match response {
            PyValue::List(items) => {
                let sep = match word(3) {
                    None => " ",
                    Some("--with-time") => "\n",
                    Some(sep) => sep,
                };
                let items: Option<Vec<String>> = items.iter().map(text).collect();
                items?.join(sep)
            }
            other => other.to_string(),
        },
        _ => response.to_string(),
    })
}

/// The text printed for an error reply.
pub fn beautify_error(error: &PyValue) -> String {
    match error {
        PyValue::Exception(e) => beautify_exception(e),
        other => other.to_string(),
    }
}

fn beautify_exception(e: &PyException) -> String {
    if e.is_a("UnknownJailException") {
        if let Some(jail) = e.first_arg_str() {
            return format!("Sorry but the jail '{jail}' does not exist");
        }
    } else if e.is_a("IndexError") {
        return "Sorry but the command is invalid".into();
    } else if e.is_a("DuplicateJailException")
        && let Some(jail) = e.first_arg_str()
    {
        return format!("The jail '{jail}' already exists");
    }
    e.to_string()
}

fn status(command: &[String], response: &PyValue) -> Option<String> {
    let mut lines = Vec::new();
    let sections = seq(response)?;
    if let Some(jail) = command.get(1) {
        lines.push(format!("Status for the jail: {jail}"));
        for (n, section) in sections.iter().enumerate() {
            let last = n + 1 == sections.len();
            let (title, entries) = pair(section)?;
            lines.push(format!("{} {title}", if last { "`-" } else { "|-" }));
            let indent = if last { "   " } else { "|  " };
            let entries = seq(entries)?;
            for (m, entry) in entries.iter().enumerate() {
                let branch = if m + 1 == entries.len() { "`-" } else { "|-" };
                let (key, value) = pair(entry)?;
                lines.push(format!("{indent}{branch} {key}:\t{}", joined(value)));
            }
        }
    } else {
        lines.push("Status".to_string());
        for (n, entry) in sections.iter().enumerate() {
            let branch = if n + 1 == sections.len() { "`-" } else { "|-" };
            let (key, value) = pair(entry)?;
            lines.push(format!("{branch} {key}:\t{}", joined(value)));
        }
    }
    Some(lines.join("\n"))
}

/// A list prints as its items joined by spaces; anything else as `str()`.
fn joined(value: &PyValue) -> String {
    match value {
        PyValue::List(items) => items
            .iter()
            .map(PyValue::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn pair(value: &PyValue) -> Option<(&PyValue, &PyValue)> {
    match value.as_seq()? {
        [a, b, ..] => Some((a, b)),
        _ => None,
    }
}

/// A list drawn as a tree under a heading, or a sentence when it is empty.
fn tree(response: &PyValue, empty: &str, heading: &str) -> Option<String> {
    let items: Option<Vec<String>> = seq(response)?
        .iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect();
    let items = items?;
    if items.is_empty() {
        return Some(empty.to_string());
    }
    let mut out = heading.to_string();
    for (n, item) in items.iter().enumerate() {
        let branch = if n + 1 == items.len() { "`-" } else { "|-" };
        out.push_str(&format!("\n{branch} {item}"));
    }
    Some(out)
}

/// The items of a list or tuple; a string is a sequence of one-character strings in
/// Python, and the client treats it so.
fn seq(value: &PyValue) -> Option<Vec<PyValue>> {
    match value {
        PyValue::List(v) | PyValue::Tuple(v) => Some(v.clone()),
        PyValue::Str(s) => Some(s.chars().map(|c| PyValue::Str(c.to_string())).collect()),
        _ => None,
    }
}

/// fail2ban's name for a numeric log level (its own levels included).
pub fn level_name(level: i64) -> String {
    match level {
        0 => "NOTSET".into(),
        5 => "HEAVY".into(),
        7 => "TRACE".into(),
        10 => "DEBUG".into(),
        18 => "MSG".into(),
        20 => "INFO".into(),
        25 => "NOTICE".into(),
        30 => "WARNING".into(),
        40 => "ERROR".into(),
        50 => "CRITICAL".into(),
        1..=49 => format!("#{level:02}-Lev."),
        _ => format!("Level {level}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &str) -> Vec<String> {
        words.split(' ').map(String::from).collect()
    }

    #[test]
    fn jail_status_tree() {
        let reply = PyValue::List(vec![
            PyValue::pair(
                "Filter",
                PyValue::List(vec![
                    PyValue::pair("Currently failed", PyValue::Int(1)),
                    PyValue::pair("Total failed", PyValue::Int(7)),
                    PyValue::pair("File list", PyValue::str_list(["/var/log/auth.log"])),
                ]),
            ),
            PyValue::pair(
                "Actions",
                PyValue::List(vec![
                    PyValue::pair("Currently banned", PyValue::Int(2)),
                    PyValue::pair(
                        "Banned IP list",
                        PyValue::str_list(["192.0.2.1", "192.0.2.2"]),
                    ),
                ]),
            ),
        ]);
        assert_eq!(
            beautify(&cmd("status sshd"), &reply),
            "Status for the jail: sshd\n\
             |- Filter\n\
             |  |- Currently failed:\t1\n\
             |  |- Total failed:\t7\n\
             |  `- File list:\t/var/log/auth.log\n\
             `- Actions\n   \
                |- Currently banned:\t2\n   \
                `- Banned IP list:\t192.0.2.1 192.0.2.2"
        );
    }

    #[test]
    fn odd_shapes_fall_back_like_python() {
        assert_eq!(beautify(&cmd("ping"), &PyValue::Int(3)), "33");
        assert_eq!(beautify_strict(&cmd("status"), &PyValue::Int(3)), None);
        assert_eq!(
            beautify(&cmd("get dbpurgeage"), &PyValue::Float(86400.9)),
            "Current database purge age is:\n`- 86400seconds"
        );
        // A string is a sequence of characters to Python.
        assert_eq!(
            beautify(&cmd("get x logpath"), &PyValue::str("ab")),
            "Current monitored log file(s):\n|- a\n`- b"
        );
    }

    #[test]
    fn errors() {
        let unknown = PyValue::Exception(PyException::unknown_jail("x"));
        assert_eq!(
            beautify_error(&unknown),
            "Sorry but the jail 'x' does not exist"
        );
        let idx = PyValue::Exception(PyException::missing_argument("list index out of range"));
        assert_eq!(beautify_error(&idx), "Sorry but the command is invalid");
        assert_eq!(
            beautify_error(&PyValue::Exception(PyException::key_error("a"))),
            "'a'"
        );
        assert_eq!(level_name(12), "#12-Lev.");
    }
}
