#!/usr/bin/python3
"""Drive the fixed two-user XMPP scenario used for xmppscope's test captures.

Runs alice@localhost/balcony and bob@localhost/garden (slixmpp clients, one
asyncio loop) against a local Prosody on 127.0.0.1 and writes one JSON object
per action to the --actions file.  Meant to be called by scripts/record-captures
with Debian's /usr/bin/python3 (where python3-slixmpp lives).

Every wait is bounded; any failure exits non-zero with a message on stderr.
"""

import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import time

import slixmpp

DOMAIN = "localhost"
ALICE = "alice@localhost"
BOB = "bob@localhost"
ALICE_RES = "balcony"
BOB_RES = "garden"

STEP_PAUSE = 0.3     # seconds between visible actions
WAIT = 5.0           # bound for every single wait on the network

# Fixed texts of the scenario.
TEXT_ALICE_1 = "Hi Bob! Are you free for lunch today?"
TEXT_BOB_1 = "Sure, 12:30 at the usual place?"
TEXT_BOB_2 = "Café « Zoë »: fish & chips <10 € — ça marche? 🍟"
AWAY_STATUS = "in a meeting"

log = logging.getLogger("xmpp_scenario")


class ScenarioError(Exception):
    pass


class ActionLog:
    """Appends one JSON object per line; all keys always present."""

    KEYS = ("t", "actor", "action", "to", "body", "state", "show", "status")

    def __init__(self, path):
        self.fh = open(path, "w", encoding="utf-8")

    def write(self, t, actor, action, **extra):
        rec = {k: None for k in self.KEYS}
        rec.update(t=round(t, 6), actor=actor, action=action)
        rec.update(extra)
        self.fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=False) + "\n")
        self.fh.flush()

    def close(self):
        self.fh.close()


class Client(slixmpp.ClientXMPP):
    """A slixmpp client that never resolves DNS and uses deterministic ids."""

    def __init__(self, jid, password, opts):
        super().__init__(jid, password, sasl_mech="PLAIN")
        self.opts = opts
        self.local = jid.split("@", 1)[0]
        self._id_counter = 0
        self.use_aiodns = False
        self.use_ipv6 = False
        self.whitespace_keepalive = False
        self.register_plugin("xep_0085")  # chat state notifications

        mech = self["feature_mechanisms"]
        if opts.tls == "none":
            # PLAIN over a cleartext stream: slixmpp refuses this by default.
            mech.unencrypted_plain = True
        else:
            ctx = self.ssl_context  # created by slixmpp with create_default_context()
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if opts.tls_max == "1.2":
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            else:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_3
            if opts.ciphers:
                ctx.set_ciphers(opts.ciphers)
            if opts.keylog:
                ctx.keylog_filename = opts.keylog
            # Trust only the throw-away self-signed server certificate.
            self.ca_certs = opts.cafile

        # Events the scenario waits on.
        self.session_started = asyncio.Event()
        self.roster_received = asyncio.Event()
        self.inbox = asyncio.Queue()
        self.presences = asyncio.Queue()
        self.failure = None

        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("message", self._on_message)        # has <body/>
        self.add_event_handler("chatstate", self._on_chatstate)    # any chat state
        self.add_event_handler("presence", self._on_presence)
        self.add_event_handler("failed_auth", self._on_fail)
        self.add_event_handler("connection_failed", self._on_fail)
        self.add_event_handler("ssl_invalid_chain", self._on_fail)
        self.add_event_handler("stream_error", self._on_fail)

    # Deterministic stanza ids: alice-1, alice-2, ...
    def new_id(self):
        self._id_counter += 1
        return "%s-%d" % (self.local, self._id_counter)

    # Never touch DNS: the server is always on loopback.
    async def get_dns_records(self, domain, port=None):
        return [(DOMAIN, self.opts.host, self.opts.port)]

    def _on_session_start(self, _event):
        self.session_started.set()

    def _on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            self.inbox.put_nowait(msg)

    def _on_chatstate(self, msg):
        if not msg["body"]:  # standalone notification; bodies come via "message"
            self.inbox.put_nowait(msg)

    def _on_presence(self, pres):
        self.presences.put_nowait(pres)

    def _on_fail(self, what):
        self.failure = repr(what)
        log.error("%s: failure: %r", self.boundjid, what)


async def bounded(aw, what):
    try:
        return await asyncio.wait_for(aw, WAIT)
    except asyncio.TimeoutError:
        raise ScenarioError("timed out after %.0fs waiting for %s" % (WAIT, what))


async def expect_message(client, sender, state=None, body=None):
    """Wait until client has received a message from sender with the given
    chat state and/or body."""
    what = "%s to receive %s/%s from %s" % (client.boundjid.bare, state, body, sender)

    async def loop():
        while True:
            msg = await client.inbox.get()
            if msg["from"].bare != sender:
                continue
            if state is not None and msg["chat_state"] != state:
                continue
            if body is not None and msg["body"] != body:
                continue
            return msg

    return await bounded(loop(), what)


async def expect_presence(client, sender, ptype="available", show="", status=""):
    what = "%s to see presence %s/%s/%s of %s" % (client.boundjid.bare, ptype, show, status, sender)

    async def loop():
        while True:
            p = await client.presences.get()
            if p["from"].bare != sender:
                continue
            got_type = "unavailable" if p["type"] == "unavailable" else "available"
            if got_type != ptype:
                continue
            if ptype == "available" and (p["show"] or "") != show:
                continue
            if ptype == "available" and (p["status"] or "") != status:
                continue
            return p

    return await bounded(loop(), what)


class Scenario:
    def __init__(self, opts):
        self.opts = opts
        self.actions = ActionLog(opts.actions)
        self.alice = Client("%s/%s" % (ALICE, ALICE_RES), opts.alice_password, opts)
        self.bob = Client("%s/%s" % (BOB, BOB_RES), opts.bob_password, opts)

    def check(self):
        for c in (self.alice, self.bob):
            if c.failure:
                raise ScenarioError("%s failed: %s" % (c.boundjid.bare, c.failure))

    async def pause(self):
        await asyncio.sleep(STEP_PAUSE)
        self.check()

    async def signin(self, c):
        t = time.time()
        if self.opts.tls == "none":
            c.connect((DOMAIN, self.opts.port), force_starttls=False, disable_starttls=True)
        elif self.opts.tls == "direct":
            # XEP-0368: TLS from the first byte, no STARTTLS.
            c.connect((DOMAIN, self.opts.port), use_ssl=True, force_starttls=False,
                      disable_starttls=True)
        else:
            c.connect((DOMAIN, self.opts.port), force_starttls=True, disable_starttls=False)

        async def wait_session():
            while not c.session_started.is_set():
                if c.failure:
                    raise ScenarioError("%s sign-in failed: %s" % (c.boundjid.bare, c.failure))
                await asyncio.sleep(0.02)

        await bounded(wait_session(), "%s to sign in" % c.boundjid.bare)
        self.actions.write(t, c.boundjid.bare, "signin", jid=str(c.boundjid),
                           mechanism="PLAIN",
                           tls=(None if self.opts.tls == "none" else "TLSv" + self.opts.tls_max))

    async def roster(self, c):
        t = time.time()
        result = await bounded(c.get_roster(), "%s roster result" % c.boundjid.bare)
        items = []
        for jid, item in sorted(result["roster"]["items"].items(), key=lambda kv: str(kv[0])):
            items.append({"jid": str(jid), "name": item.get("name") or None,
                          "subscription": item.get("subscription"),
                          "groups": sorted(item.get("groups") or [])})
        self.actions.write(t, c.boundjid.bare, "roster", items=items)

    def presence(self, c, show=None, status=None):
        t = time.time()
        kwargs = {}
        if show:
            kwargs["pshow"] = show
        if status:
            kwargs["pstatus"] = status
        c.send_presence(**kwargs)
        self.actions.write(t, c.boundjid.bare, "presence", show=show, status=status,
                           type="available")

    def chat_state(self, c, to, state):
        t = time.time()
        msg = c.make_message(mto=to, mtype="chat")
        msg["chat_state"] = state
        msg.send()
        self.actions.write(t, c.boundjid.bare, "chat_state", to=to, state=state, id=msg["id"])

    def send_message(self, c, to, body):
        t = time.time()
        msg = c.make_message(mto=to, mbody=body, mtype="chat")
        msg["chat_state"] = "active"
        msg.send()
        self.actions.write(t, c.boundjid.bare, "send_message", to=to, body=body,
                           state="active", id=msg["id"])

    async def signout(self, c):
        t = time.time()
        c.send_presence(ptype="unavailable")
        self.actions.write(t, c.boundjid.bare, "signout", type="unavailable")
        return t

    async def run(self):
        a, b = self.alice, self.bob

        # --- sign-in ---------------------------------------------------
        await self.signin(a)
        await self.roster(a)
        self.presence(a)
        await self.pause()

        await self.signin(b)
        await self.roster(b)
        self.presence(b)
        # Both see each other online before the chat starts.
        await expect_presence(a, BOB)
        await expect_presence(b, ALICE)
        await self.pause()

        # --- alice types, hesitates, types again, sends ----------------
        for state in ("composing", "paused", "composing"):
            self.chat_state(a, BOB, state)
            await expect_message(b, ALICE, state=state)
            await self.pause()
        self.send_message(a, BOB, TEXT_ALICE_1)
        await expect_message(b, ALICE, body=TEXT_ALICE_1)
        await self.pause()

        # --- bob answers ------------------------------------------------
        self.chat_state(b, ALICE, "composing")
        await expect_message(a, BOB, state="composing")
        await self.pause()
        self.send_message(b, ALICE, TEXT_BOB_1)
        await expect_message(a, BOB, body=TEXT_BOB_1)
        await self.pause()

        # --- alice goes away and comes back ------------------------------
        self.presence(a, show="away", status=AWAY_STATUS)
        await expect_presence(b, ALICE, show="away", status=AWAY_STATUS)
        await self.pause()
        self.presence(a)
        await expect_presence(b, ALICE)
        await self.pause()

        # --- bob sends text needing escaping and non-ASCII ---------------
        self.send_message(b, ALICE, TEXT_BOB_2)
        await expect_message(a, BOB, body=TEXT_BOB_2)
        await self.pause()

        # --- sign-off ---------------------------------------------------
        await self.signout(a)
        await expect_presence(b, ALICE, ptype="unavailable")
        await bounded(a.disconnect(wait=WAIT), "alice to close her stream")
        await self.pause()

        await self.signout(b)
        await asyncio.sleep(0.1)
        await bounded(b.disconnect(wait=WAIT), "bob to close his stream")
        self.check()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--tls", choices=("none", "starttls", "direct"), default="none")
    p.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3")
    p.add_argument("--cafile", help="server certificate to trust (starttls)")
    p.add_argument("--keylog", help="write TLS secrets here (NSS key log format)")
    p.add_argument("--ciphers", help="OpenSSL cipher list for TLS <= 1.2 (default: Python's)")
    p.add_argument("--actions", required=True, help="JSON-lines action log to write")
    p.add_argument("--alice-password", required=True)
    p.add_argument("--bob-password", required=True)
    p.add_argument("--timeout", type=float, default=30.0, help="bound for the whole scenario")
    p.add_argument("-v", "--verbose", action="store_true")
    opts = p.parse_args(argv)
    if opts.host not in ("127.0.0.1", "::1"):
        p.error("only loopback servers are allowed")
    if opts.tls != "none" and not opts.cafile:
        p.error("--tls %s needs --cafile" % opts.tls)
    return opts


async def amain(opts):
    sc = Scenario(opts)
    try:
        await asyncio.wait_for(sc.run(), opts.timeout)
    except asyncio.TimeoutError:
        raise ScenarioError("scenario did not finish within %.0fs" % opts.timeout)
    finally:
        sc.actions.close()
        for c in (sc.alice, sc.bob):
            if c.transport is not None:
                c.abort()


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if opts.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if opts.keylog:
        # keylog_filename appends; start from an empty file.
        open(opts.keylog, "w").close()
    try:
        asyncio.run(amain(opts))
    except ScenarioError as e:
        print("xmpp_scenario: error: %s" % e, file=sys.stderr)
        return 1
    if opts.keylog:
        with open(opts.keylog) as fh:
            lines = [l for l in fh if l.strip()]
        labels = {l.split()[0] for l in lines}
        want = {"CLIENT_RANDOM"} if opts.tls_max == "1.2" else {"CLIENT_TRAFFIC_SECRET_0"}
        if not want <= labels:
            print("xmpp_scenario: error: key log %s lacks %s (has %s)"
                  % (opts.keylog, sorted(want), sorted(labels)), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
