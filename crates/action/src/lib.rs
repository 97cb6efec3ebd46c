//! Actions: fail2ban's action commands per ticket, run safely, with timeouts and a ban queue.
