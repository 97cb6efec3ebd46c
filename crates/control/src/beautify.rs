//! How `fail2ban-client` turns a reply into text: the `status` trees, the "Current …"
//! answers, lists drawn with `|-` and `` `- ``, and Python's `print()` for the rest.
//!
//! The choice depends on the command that was sent, word by word, exactly as the
//! Python client decides it, so the same reply prints the same for either client.

use crate::value::{PyException, PyValue};

/// The text `fail2ban-client` prints for a successful reply to `command`.
///
/// A reply whose shape does not fit the command prints as the Python client's
/// fallback does: the `repr()` of the text built so far, then the reply's `repr()`
/// (its warning goes to standard error; see [`beautify_strict`] to tell the cases
/// apart).
pub fn beautify(command: &[String], response: &PyValue) -> String {
    match render(command, response) {
        Ok(msg) => msg.to_string(),
        Err(partial) => format!("{}{}", partial.repr(), response.repr()),
    }
}

/// Like [`beautify`], but `None` when the reply does not have the shape the command
/// calls for.
pub fn beautify_strict(command: &[String], response: &PyValue) -> Option<String> {
    render(command, response).ok().map(|msg| msg.to_string())
}

/// What the client prints (`Ok`), or what it had built when the reply turned out not
/// to fit (`Err`), mirroring the Python beautifier step by step: it starts from the
/// reply itself and replaces it piece by piece.
fn render(command: &[String], response: &PyValue) -> Result<PyValue, PyValue> {
    let word = |i: usize| command.get(i).map(String::as_str);
    let unchanged = || response.clone();
    let text = |s: String| Ok(PyValue::Str(s));
    match word(0) {
        Some("ping") => {
            return text(format!(
                "Server replied: {}",
                as_str(response).ok_or_else(unchanged)?
            ));
        }
        Some("version") => return Ok(unchanged()),
        Some("start") => return text("Jail started".into()),
        Some("stop") => {
            return match (command.len(), response) {
                (1, PyValue::None) => text("Shutdown successful".into()),
                (n, PyValue::None) if n != 1 => text("Jail stopped".into()),
                _ => Ok(unchanged()),
            };
        }
        Some("add") => {
            return text(format!(
                "Added jail {}",
                as_str(response).ok_or_else(unchanged)?
            ));
        }
        Some("flushlogs") => {
            return text(format!("logs: {}", as_str(response).ok_or_else(unchanged)?));
        }
        Some("echo") => return text(join(" ", response).ok_or_else(unchanged)?),
        Some("status") => return status(command, response).map(PyValue::Str),
        _ => {}
    }
    let Some(second) = word(1) else {
        return Ok(unchanged());
    };
    // From here on a failure keeps the heading already written, as in Python.
    let headed = |heading: &str, rest: Option<String>| match rest {
        Some(rest) => Ok(PyValue::Str(format!("{heading}{rest}"))),
        None => Err(PyValue::str(heading)),
    };
    match second {
        "syslogsocket" => {
            return headed(
                "Current syslog socket is:\n",
                as_str(response).map(|s| format!("`- {s}")),
            );
        }
        "logtarget" => {
            return headed(
                "Current logging target is:\n",
                as_str(response).map(|s| format!("`- {s}")),
            );
        }
        "loglevel" => {
            let level = match response {
                PyValue::Int(n) => PyValue::Str(level_name(*n)),
                // A bool is an int to Python.
                PyValue::Bool(b) => PyValue::Str(level_name(i64::from(*b))),
                other => other.clone(),
            };
            return text(format!("Current logging level is {}", level.repr()));
        }
        "dbfile" => {
            if *response == PyValue::None {
                return text("Database currently disabled".into());
            }
            return headed(
                "Current database file is:\n",
                as_str(response).map(|s| format!("`- {s}")),
            );
        }
        "dbpurgeage" => {
            if *response == PyValue::None {
                return text("Database currently disabled".into());
            }
            let seconds = percent_i(response).map(|n| format!("`- {n}seconds"));
            return headed("Current database purge age is:\n", seconds);
        }
        _ => {}
    }
    let Some(third) = word(2) else {
        return Ok(unchanged());
    };
    let jail = second;
    match third {
        "logpath" | "addlogpath" | "dellogpath" => tree(
            response,
            "No file is currently monitored",
            "Current monitored log file(s):\n",
            |_, item| item.to_string(),
        ),
        "logencoding" => headed(
            "Current log encoding is set to:\n",
            as_str(response).map(String::from),
        ),
        "journalmatch" | "addjournalmatch" | "deljournalmatch" => {
            if py_len(response).ok_or_else(unchanged)? == 0 {
                return text("No journal match filter set".into());
            }
            let groups: Option<Vec<String>> =
                py_iter(response).and_then(|items| items.iter().map(|m| join(" ", m)).collect());
            headed("Current match filter:\n", groups.map(|g| g.join(" + ")))
        }
        "datepattern" => {
            let shown = match response {
                PyValue::None => Some("Not set/required".to_string()),
                _ => match py_index(response, 0) {
                    Some(PyValue::None) => py_index(response, 1).and_then(|v| percent_s(&v)),
                    Some(_) => match response {
                        PyValue::Tuple(pair) if pair.len() == 2 => {
                            Some(format!("{} ({})", pair[0], pair[1]))
                        }
                        _ => None,
                    },
                    None => None,
                },
            };
            headed("Current date pattern set to: ", shown)
        }
        "ignoreip" | "addignoreip" | "delignoreip" => tree(
            response,
            "No IP address/network is ignored",
            "These IP addresses/networks are ignored:\n",
            |_, item| item.to_string(),
        ),
        "failregex" | "addfailregex" | "delfailregex" | "ignoreregex" | "addignoreregex"
        | "delignoreregex" => tree(
            response,
            "No regular expression is defined",
            "The following regular expression are defined:\n",
            |n, item| format!("[{n}]: {item}"),
        ),
        "actions" => {
            if py_len(response).ok_or_else(unchanged)? == 0 {
                return text(format!("No actions for jail {jail}"));
            }
            headed(
                &format!("The jail {jail} has the following actions:\n"),
                join(", ", response),
            )
        }
        kind @ ("actionproperties" | "actionmethods") => {
            let what = if kind == "actionproperties" {
                "properties"
            } else {
                "methods"
            };
            let len = py_len(response).ok_or_else(unchanged)?;
            let action = word(3).ok_or_else(unchanged)?;
            if len == 0 {
                return text(format!("No {what} for jail {jail} action {action}"));
            }
            headed(
                &format!("The jail {jail} action {action} has the following {what}:\n"),
                join(", ", response),
            )
        }
        "banip" if word(0) == Some("get") => match response {
            PyValue::List(_) => {
                let sep = match word(3) {
                    None => " ",
                    Some("--with-time") => "\n",
                    Some(sep) => sep,
                };
                text(join(sep, response).ok_or_else(unchanged)?)
            }
            _ => Ok(unchanged()),
        },
        _ => Ok(unchanged()),
    }
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

/// The `status` trees. On a misfit, the lines written so far are what Python had.
fn status(command: &[String], response: &PyValue) -> Result<String, PyValue> {
    let partial = |lines: &[String]| PyValue::str_list(lines.iter().cloned());
    let mut lines = vec![match command.get(1) {
        Some(jail) => format!("Status for the jail: {jail}"),
        None => "Status".to_string(),
    }];
    let sections = py_iter(response).ok_or_else(|| partial(&lines))?;
    let count = sections.len();
    let branch = |n: usize, count: usize| if n + 1 == count { "`-" } else { "|-" };
    if command.len() > 1 {
        for (n, section) in sections.iter().enumerate() {
            let title = py_index(section, 0).ok_or_else(|| partial(&lines))?;
            lines.push(format!("{} {title}", branch(n, count)));
            let indent = if n + 1 == count { "   " } else { "|  " };
            let entries = py_index(section, 1)
                .and_then(|e| py_iter(&e))
                .ok_or_else(|| partial(&lines))?;
            for (m, entry) in entries.iter().enumerate() {
                let (Some(key), Some(value)) = (py_index(entry, 0), py_index(entry, 1)) else {
                    return Err(partial(&lines));
                };
                let prefix = format!("{indent}{}", branch(m, entries.len()));
                lines.push(format!("{prefix} {key}:\t{}", list_or_str(&value)));
            }
        }
    } else {
        for (n, entry) in sections.iter().enumerate() {
            let (Some(key), Some(value)) = (py_index(entry, 0), py_index(entry, 1)) else {
                return Err(partial(&lines));
            };
            lines.push(format!(
                "{} {key}:\t{}",
                branch(n, count),
                list_or_str(&value)
            ));
        }
    }
    Ok(lines.join("\n"))
}

/// A list prints as its items joined by spaces; anything else as `str()`.
fn list_or_str(value: &PyValue) -> String {
    match value {
        PyValue::List(items) => items
            .iter()
            .map(PyValue::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A list drawn as a tree under a heading, or a sentence when it is empty. Python
/// builds it line by line, so a misfit keeps the lines before it.
fn tree(
    response: &PyValue,
    empty: &str,
    heading: &str,
    line: impl Fn(usize, &str) -> String,
) -> Result<PyValue, PyValue> {
    let len = py_len(response).ok_or_else(|| response.clone())?;
    if len == 0 {
        return Ok(PyValue::str(empty));
    }
    let mut out = heading.to_string();
    let items = py_items(response).ok_or_else(|| PyValue::str(out.clone()))?;
    for (n, item) in items.iter().enumerate() {
        let item = as_str(item).ok_or_else(|| PyValue::str(out.clone()))?;
        let branch = if n + 1 == items.len() { "`- " } else { "|- " };
        out.push_str(branch);
        out.push_str(&line(n, item));
        if n + 1 < items.len() {
            out.push('\n');
        }
    }
    Ok(PyValue::Str(out))
}

fn as_str(value: &PyValue) -> Option<&str> {
    value.as_str()
}

/// Python's `len()`.
fn py_len(value: &PyValue) -> Option<usize> {
    match value {
        PyValue::Str(s) => Some(s.chars().count()),
        PyValue::Bytes(b) => Some(b.len()),
        PyValue::List(v) | PyValue::Tuple(v) | PyValue::Set(v) => Some(v.len()),
        PyValue::Dict(v) => Some(v.len()),
        _ => None,
    }
}

/// The items of a sequence (what slicing and negative indexing see): a string is a
/// sequence of one-character strings.
fn py_items(value: &PyValue) -> Option<Vec<PyValue>> {
    match value {
        PyValue::List(v) | PyValue::Tuple(v) => Some(v.clone()),
        PyValue::Str(s) => Some(s.chars().map(|c| PyValue::Str(c.to_string())).collect()),
        _ => None,
    }
}

/// What iterating over a value yields (a dictionary yields its keys).
fn py_iter(value: &PyValue) -> Option<Vec<PyValue>> {
    match value {
        PyValue::Set(v) => Some(v.clone()),
        PyValue::Dict(v) => Some(v.iter().map(|(k, _)| k.clone()).collect()),
        PyValue::Bytes(b) => Some(b.iter().map(|x| PyValue::Int(i64::from(*x))).collect()),
        other => py_items(other),
    }
}

/// `value[i]` for a sequence.
fn py_index(value: &PyValue, i: usize) -> Option<PyValue> {
    match value {
        PyValue::List(v) | PyValue::Tuple(v) => v.get(i).cloned(),
        PyValue::Str(s) => s.chars().nth(i).map(|c| PyValue::Str(c.to_string())),
        _ => None,
    }
}

/// `sep.join(value)`: every item must be a string.
fn join(sep: &str, value: &PyValue) -> Option<String> {
    let items: Option<Vec<String>> = py_iter(value)?
        .iter()
        .map(|v| as_str(v).map(String::from))
        .collect();
    Some(items?.join(sep))
}

/// `"%s" % value`: a tuple is the argument list, so only a 1-tuple formats.
fn percent_s(value: &PyValue) -> Option<String> {
    match value {
        PyValue::Tuple(items) => match items.as_slice() {
            [one] => Some(one.to_string()),
            _ => None,
        },
        other => Some(other.to_string()),
    }
}

/// `"%i" % value`.
fn percent_i(value: &PyValue) -> Option<i64> {
    match value {
        PyValue::Int(n) => Some(*n),
        PyValue::Bool(b) => Some(i64::from(*b)),
        PyValue::Float(x) if x.is_finite() => Some(x.trunc() as i64),
        PyValue::Tuple(items) => match items.as_slice() {
            [one @ (PyValue::Int(_) | PyValue::Bool(_) | PyValue::Float(_))] => percent_i(one),
            _ => None,
        },
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
        assert_eq!(beautify(&cmd("status"), &PyValue::Int(3)), "['Status']3");
        assert_eq!(
            beautify(&cmd("status"), &PyValue::List(vec![PyValue::Int(3)])),
            "['Status'][3]"
        );
        assert_eq!(
            beautify(&cmd("get logtarget"), &PyValue::Int(3)),
            "'Current logging target is:\\n'3"
        );
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
