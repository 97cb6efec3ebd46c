"""Runs fail2ban's own counting, ban-list and ban-time code on requests read as JSON
from stdin and prints the outcomes as JSON: the reference side of
tests/jail/differential.rs. fail2ban's clock is frozen per step (MyTime.setTime) and
its random source is replaced by the value the request gives."""

import json
import math
import sys

from fail2ban.server import jail as jail_module
from fail2ban.server.banmanager import BanManager
from fail2ban.server.failmanager import FailManager
from fail2ban.server.jail import Jail
from fail2ban.server.mytime import MyTime
from fail2ban.server.observer import ObserverThread
from fail2ban.server.ticket import BanTicket, FailTicket


class Extra:
    """Just the attributes Jail.setBanTimeExtra touches."""

    def __init__(self):
        self._banExtra = {}
        self.database = object()


def ban_times(req):
    extra = Extra()
    try:
        for opt in ("factor", "formula", "multipliers", "maxtime", "rndtime"):
            value = req["options"].get(opt)
            if value is not None:
                Jail.setBanTimeExtra(extra, opt, value)
        if extra._banExtra.get("evformula") is None:
            Jail.setBanTimeExtra(extra, "increment", "true")
    except Exception as e:
        return {"config_error": type(e).__name__}
    out = []
    for base, count, rnd in req["cases"]:
        jail_module.random.random = lambda rnd=rnd: rnd
        try:
            value = extra._banExtra["evformula"](ObserverThread.BanTimeIncr(base, count))
            out.append(float(value))
        except Exception as e:
            out.append(type(e).__name__)
    return {"values": out}


def fail_manager(req):
    fm = FailManager()
    fm.setMaxRetry(req["maxretry"])
    fm.setMaxTime(req["findtime"])
    fm.maxMatches = req["maxmatches"]
    out = []
    for op in req["ops"]:
        if op[0] == "fail":
            _, fid, time, matches, weight = op
            ticket = FailTicket(fid, time, matches=list(matches))
            attempts = fm.addFailure(ticket, weight)
            banned = None
            if attempts >= fm.getMaxRetry():
                t = fm.toBan(fid)
                banned = [t.getTime(), t.getAttempt(), t.getMatches()]
            out.append([attempts, banned])
        else:
            fm.cleanup(op[1])
            out.append(fm.size())
    return {"steps": out, "total": fm.getFailTotal()}


def ban_manager(req):
    bm = BanManager()
    bm.setBanTime(req["bantime"])
    out = []
    for op in req["ops"]:
        if op[0] == "ban":
            _, fid, time, bantime, now = op
            MyTime.setTime(now)
            ticket = BanTicket(fid, time)
            if bantime is not None:
                ticket.setBanTime(bantime)
            reason = {}
            added = bm.addBanTicket(ticket, reason)
            kind = "banned" if added else (
                "expired" if reason.get("expired") else
                ("prolonged" if reason.get("prolong") else "already"))
            out.append(kind)
        else:
            released = bm.unBanList(op[1])
            out.append(sorted(str(t.getID()) for t in released))
    MyTime.setTime(None)
    state = sorted(
        [str(t.getID()), t.getTime(), t.getEndOfBanTime(bm.getBanTime()), t.getBanCount()]
        for t in bm)
    return {"steps": out, "state": state, "total": bm.getBanTotal()}


def describe(value):
    if isinstance(value, bool):
        return "b:%s" % value
    if isinstance(value, int):
        return "i:%d" % value
    if isinstance(value, float):
        return "f:%r" % value
    return "error:%s" % type(value).__name__


def expressions(req):
    base, count, factor = req["vars"]
    scope = {"ban": ObserverThread.BanTimeIncr(base, count), "banFactor": factor, "math": math}
    out = []
    for text in req["exprs"]:
        try:
            out.append(describe(eval(text, {"math": math}, scope)))
        except Exception as e:
            out.append("error:%s" % type(e).__name__)
    return {"values": out}


def ignore_list(req):
    from fail2ban.server.filter import Filter
    f = Filter(None)
    f.ignoreSelf = False
    for entry in req["entries"]:
        f.addIgnoreIP(entry)
    return {"ignored": [bool(f.inIgnoreIPList(ip, log_ignore=False)) for ip in req["ids"]]}


HANDLERS = {"ignore": ignore_list, "expr": expressions, "bantime": ban_times, "fail": fail_manager, "ban": ban_manager}

requests = json.load(sys.stdin)
json.dump([HANDLERS[r["kind"]](r) for r in requests], sys.stdout)
