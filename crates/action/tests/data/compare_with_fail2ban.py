"""Checks rampart's action commands against fail2ban's CommandAction.

Reads a Python literal from stdin: a list of cases (action name, properties, ticket
info, and rampart's results for each command and family) and prints one line per
difference, then "checked N".
"""
import ast
import re
import sys

import fail2ban.server.action as action_module
from fail2ban.server.action import CommandAction

action_module.ADD_REPL_TAGS["fq-hostname"] = lambda: "host.example.org"
action_module.ADD_REPL_TAGS["sh-hostname"] = lambda: "host"


def normalise(argv):
    """rampart writes ${f2bV_x} and ${0}; fail2ban writes $f2bV_x and $0."""
    if not argv:
        return argv
    first = re.sub(r"\$\{(f2bV_\w+)\}", r"$\1", argv[0])
    if len(argv) > 1:
        head, sep, rest = first.partition("\n")
        first = re.sub(r"=\$\{(\d+)\} ", r"=$\1 ", head) + sep + rest
    return [first] + argv[1:]


def main():
    cases = ast.literal_eval(sys.stdin.read())
    checked = 0
    differences = 0

    def report(text):
        nonlocal differences
        differences += 1
        if differences <= 20:
            print(text)
    for name, properties, tickets, results in cases:
        act = CommandAction(None, name)
        for key, value in properties:
            setattr(act, key, value)
        for command, family, ticket_index, static, dynamic in results:
            cond = "family=" + family if family else ""
            try:
                expected = act.replaceTag(
                    "<%s>" % command, act._properties, conditional=cond, cache=act._substCache
                )
            except ValueError:
                expected = None
            where = "%s %s %s" % (name, command, family or "-")
            if expected != static:
                report("static %s:\n  fail2ban %r\n  rampart  %r" % (where, expected, static))
                continue
            checked += 1
            if ticket_index is None or expected is None:
                continue
            real = act.replaceDynamicTags(expected, tickets[ticket_index])
            real = real if isinstance(real, list) else [real]
            if real != normalise(dynamic):
                report("dynamic %s:\n  fail2ban %r\n  rampart  %r" % (where, real, dynamic))
                continue
            checked += 1
    print("checked %d, %d differences" % (checked, differences))


main()
