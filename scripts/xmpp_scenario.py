#!/usr/bin/python3
"""Drive the fixed two-user XMPP scenario used for xmppscope's test captures.

Runs alice@localhost/balcony and bob@localhost/garden (slixmpp clients, one
asyncio loop) against a local Prosody on 127.0.0.1 and writes one JSON object
per action to the --actions file.  Meant to be called by scripts/record-captures
with Debian's /usr/bin/python3 (where python3-slixmpp lives).

With --extras it plays the second scenario instead: alice signs in twice
(balcony and phone) with message carbons (XEP-0280) enabled, bob asks for a
delivery receipt (XEP-0184) that alice's client sends, bob corrects his
message (XEP-0308), alice's phone writes to bob (a carbon to the balcony),
and alice adds a contact with a name and groups and asks for its
subscription (roster pushes to both resources, RFC 6121 2.1.6, 3.1.2).

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

# The --extras scenario.
ALICE_RES_2 = "phone"
DAVE = "dave@localhost"
TEXT_X_BOB_1 = "Did you get the tickets for Saturday?"
TEXT_X_BOB_1_FIXED = "Did you get the tickets for Sunday?"
TEXT_X_ALICE_1 = "Yes, two tickets — row 7 & 8 <front>."
TEXT_X_BOB_2 = "Great, see you there!"
DAVE_NAME = "Dave"
DAVE_GROUPS = ["Climbing", "Friends"]

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

    def __init__(self, jid, password, opts, id_prefix=None):
        super().__init__(jid, password, sasl_mech="PLAIN")
        self.opts = opts
        self.local = id_prefix or jid.split("@", 1)[0]
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
        self.extras = Extras(self) if opts.extras else None

    def clients(self):
        extra = [self.extras.phone] if self.extras else []
        return [self.alice, self.bob] + extra

    def check(self):
        for c in self.clients():
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
        if self.extras:
            return await self.extras.run()
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


class Extras:
    """The second scenario (--extras): carbons, receipts, corrections and
    roster pushes, which the first scenario never produces."""

    def __init__(self, sc):
        self.sc = sc
        opts = sc.opts
        # The balcony client keeps the ids alice-N; the phone's are
        # alice-phone-N so that no two stanzas of one account share an id.
        self.phone = Client("%s/%s" % (ALICE, ALICE_RES_2), opts.alice_password, opts,
                            id_prefix="alice-phone")
        for c in (sc.alice, self.phone, sc.bob):
            c.register_plugin("xep_0184")   # receipts
            c.register_plugin("xep_0280")   # carbons
            c.register_plugin("xep_0308")   # last message correction
            # Receipts are sent by the scenario (so that they are logged),
            # never automatically.
            c["xep_0184"].auto_ack = False
            c["xep_0184"].auto_request = False
            c.carbons = asyncio.Queue()
            c.pushes = asyncio.Queue()
            c.receipts = asyncio.Queue()
            c.add_event_handler("carbon_received",
                                lambda m, c=c: c.carbons.put_nowait(("received", m)))
            c.add_event_handler("carbon_sent",
                                lambda m, c=c: c.carbons.put_nowait(("sent", m)))
            c.add_event_handler("receipt_received", lambda m, c=c: c.receipts.put_nowait(m))
            c.add_event_handler("roster_update",
                                lambda iq, c=c: iq["type"] == "set" and c.pushes.put_nowait(iq))

    def log(self, t, c, action, **extra):
        self.sc.actions.write(t, c.boundjid.bare, action, **extra)

    async def enable_carbons(self, c):
        t = time.time()
        await bounded(c["xep_0280"].enable(), "%s to enable carbons" % c.boundjid)
        self.log(t, c, "enable_carbons", jid=str(c.boundjid))

    def presence(self, c, priority):
        t = time.time()
        c.send_presence(ppriority=priority)
        self.log(t, c, "presence", type="available", priority=priority, jid=str(c.boundjid))

    def send(self, c, to, body, receipt=False, replaces=None):
        t = time.time()
        msg = c.make_message(mto=to, mbody=body, mtype="chat")
        msg["chat_state"] = "active"
        if receipt:
            msg["request_receipt"] = True
        if replaces:
            msg["replace"]["id"] = replaces
        msg.send()
        extra = dict(to=to, body=body, state="active", id=msg["id"], jid=str(c.boundjid),
                     receipt_request=receipt)
        if replaces:
            self.log(t, c, "correct_message", replaces=replaces, **extra)
        else:
            self.log(t, c, "send_message", **extra)
        return msg["id"]

    async def expect_carbon(self, c, direction, msg_id):
        what = "%s to get a %s carbon of %s" % (c.boundjid, direction, msg_id)

        async def loop():
            while True:
                d, m = await c.carbons.get()
                inner = m["carbon_%s" % direction]
                if d == direction and inner["id"] == msg_id:
                    return inner

        inner = await bounded(loop(), what)
        self.log(time.time(), c, "carbon_seen", direction=direction, id=msg_id,
                 jid=str(c.boundjid), body=inner["body"] or None)

    async def expect_push(self, c, contact, want):
        """Wait for a roster push about contact whose item satisfies want."""
        what = "%s to get a roster push for %s" % (c.boundjid, contact)

        async def loop():
            while True:
                iq = await c.pushes.get()
                items = iq["roster"]["items"]
                for jid, item in items.items():
                    if str(jid) == contact and want(item):
                        return iq, item

        iq, item = await bounded(loop(), what)
        self.log(time.time(), c, "roster_push_seen", jid=str(c.boundjid), id=iq["id"],
                 item={"jid": contact, "name": item["name"] or None,
                       "subscription": item["subscription"] or "none",
                       "ask": item["ask"] or None,
                       "groups": sorted(item["groups"] or [])})

    async def run(self):
        sc = self.sc
        a, p, b = sc.alice, self.phone, sc.bob

        # --- alice on two resources, both with carbons and the roster --
        await sc.signin(a)
        await self.enable_carbons(a)
        await sc.roster(a)
        # The balcony has the higher priority: messages to alice's bare
        # JID go there, the phone gets carbons of them (XEP-0280 6).
        self.presence(a, 10)
        await sc.pause()
        await sc.signin(p)
        await self.enable_carbons(p)
        await sc.roster(p)
        self.presence(p, 5)
        await sc.pause()
        await sc.signin(b)
        await sc.roster(b)
        self.presence(b, 0)
        await expect_presence(b, ALICE)
        await expect_presence(a, BOB)
        await sc.pause()

        # --- bob asks for a receipt; the balcony receives and acks it --
        sc.chat_state(b, ALICE, "composing")
        await expect_message(a, BOB, state="composing")
        await sc.pause()
        first = self.send(b, ALICE, TEXT_X_BOB_1, receipt=True)
        got = await expect_message(a, BOB, body=TEXT_X_BOB_1)
        await self.expect_carbon(p, "received", first)
        t = time.time()
        a["xep_0184"].ack(got)
        self.log(t, a, "receipt", to=BOB, receipt_for=first, jid=str(a.boundjid))
        await bounded(b.receipts.get(), "bob to get the receipt")
        await sc.pause()

        # --- bob corrects it (XEP-0308) ---------------------------------
        fixed = self.send(b, ALICE, TEXT_X_BOB_1_FIXED, replaces=first)
        await expect_message(a, BOB, body=TEXT_X_BOB_1_FIXED)
        await self.expect_carbon(p, "received", fixed)
        await sc.pause()

        # --- alice answers from the phone: a sent carbon to the balcony -
        reply = self.send(p, BOB, TEXT_X_ALICE_1)
        await expect_message(b, ALICE, body=TEXT_X_ALICE_1)
        await self.expect_carbon(a, "sent", reply)
        await sc.pause()
        last = self.send(b, ALICE, TEXT_X_BOB_2, receipt=True)
        got = await expect_message(a, BOB, body=TEXT_X_BOB_2)
        await self.expect_carbon(p, "received", last)
        await sc.pause()

        # --- alice adds dave: roster set, then a subscription request --
        t = time.time()
        await bounded(a.update_roster(DAVE, name=DAVE_NAME, groups=DAVE_GROUPS),
                      "the roster set to be answered")
        self.log(t, a, "roster_set", jid=str(a.boundjid),
                 item={"jid": DAVE, "name": DAVE_NAME, "groups": sorted(DAVE_GROUPS)})
        for c in (a, p):
            await self.expect_push(c, DAVE, lambda it: it["name"] == DAVE_NAME)
        await sc.pause()
        t = time.time()
        a.send_presence(pto=DAVE, ptype="subscribe")
        self.log(t, a, "subscribe", to=DAVE, type="subscribe", jid=str(a.boundjid))
        for c in (a, p):
            await self.expect_push(c, DAVE, lambda it: it["ask"] == "subscribe")
        await sc.pause()

        # --- everybody signs off ---------------------------------------
        for c in (p, a, b):
            t = time.time()
            c.send_presence(ptype="unavailable")
            self.log(t, c, "signout", type="unavailable", jid=str(c.boundjid))
            await asyncio.sleep(0.1)
            await bounded(c.disconnect(wait=WAIT), "%s to close its stream" % c.boundjid)
            await sc.pause()
        sc.check()


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
    p.add_argument("--extras", action="store_true",
                   help="play the carbons / receipts / correction / roster-push scenario")
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
        for c in sc.clients():
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
