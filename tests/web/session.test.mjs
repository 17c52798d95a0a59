// The page's session machine (purechat/web/static/session.mjs) alone, under node:
// the rules of purechat/client/machine.py, and a model server that refuses, forgets
// whether it stored, and drops sockets, against which every line is stored exactly
// once, in the order typed (as tests/test_session_machine.py checks the Python one).
// Run by tests/test_web_session.py: node --test tests/web/session.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Backoff,
  MAX_IN_FLIGHT,
  RETRY_PAUSE,
  STORE_DAMAGED,
  Session,
  endingFromClose,
} from "../../purechat/web/static/session.mjs";

function session(fields = {}) {
  let n = 0;
  return new Session({
    name: "alice",
    room: "lobby",
    history: 20,
    sessionId: "s1",
    newId: () => `id${n++}`,
    rng: () => 0.5,
    ...fields,
  });
}

const transmitted = (actions) => actions.filter((a) => a.type === "transmit").map((a) => a.frame);
const sends = (actions) => transmitted(actions).map((f) => f.send.client_msg_id);
const welcome = (fields = {}) => ({
  welcome: { room: "lobby", name: "alice", members: ["alice"], last_seq: 0, epoch: "e1", ...fields },
});
const message = (seq, text = `m${seq}`) => ({
  event: { kind: "message", room: "lobby", seq, user: "bob", text, time_unix_ms: 1 },
});

test("joins afresh with history, then resumes after the last number in its epoch", () => {
  const s = session({ token: "t0k" });
  assert.deepEqual(transmitted(s.connected(0)), [
    { join: { name: "alice", room: "lobby", history: 20, session: "s1", token: "t0k" } },
  ]);
  s.received(welcome({ last_seq: 4 }), 0);
  s.received(message(5), 0);
  s.closed(1, { opened: true, code: 1006, reason: "" });
  assert.deepEqual(transmitted(s.connected(2)), [
    {
      join: {
        name: "alice", room: "lobby", history: 0, session: "s1", token: "t0k",
        after_seq: 5, epoch: "e1",
      },
    },
  ]);
});

test("lines typed while away go out after the welcome, in order, once", () => {
  const s = session();
  assert.deepEqual(s.send("one", 0), []);
  assert.deepEqual(s.send("two", 0), []);
  s.connected(0);
  assert.deepEqual(s.send("three", 0), []); // joining: not yet
  assert.deepEqual(sends(s.received(welcome(), 0)), ["id0", "id1", "id2"]);
  assert.deepEqual(sends(s.tick(1)), []);
});

test("at most MAX_IN_FLIGHT lines are unacknowledged on a socket", () => {
  const s = session();
  s.connected(0);
  s.received(welcome(), 0);
  const out = [];
  for (let i = 0; i < MAX_IN_FLIGHT + 3; i++) out.push(...sends(s.send(`l${i}`, 0)));
  assert.equal(out.length, MAX_IN_FLIGHT);
  const more = sends(s.received({ ack: { client_msg_id: "id0", seq: 1 } }, 0));
  assert.deepEqual(more, [`id${MAX_IN_FLIGHT}`]);
});

test("a refusal not about the line sends it and every later one again, in order", () => {
  const s = session();
  s.connected(0);
  s.received(welcome(), 0);
  for (const text of ["a", "b", "c"]) s.send(text, 0);
  s.received({ ack: { client_msg_id: "id0", seq: 1 } }, 0);
  const refused = { code: "STORE_UNAVAILABLE", message: "not now", client_msg_id: "id1" };
  assert.deepEqual(s.received({ error: refused }, 1), []);
  assert.equal(s.deadline(), 1 + RETRY_PAUSE);
  assert.deepEqual(sends(s.tick(1.2)), []);
  assert.deepEqual(sends(s.tick(1 + RETRY_PAUSE)), ["id1", "id2"]);
});

test("a refusal about the line hands its text back with the reason, and gives it up", () => {
  const s = session();
  s.connected(0);
  s.received(welcome(), 0);
  s.send("x".repeat(10), 0, true);
  const error = { code: "TEXT_TOO_LONG", message: "Message not sent: too long.", client_msg_id: "id0" };
  const actions = s.received({ error }, 0);
  assert.deepEqual(actions, [
    { type: "refused", text: "x".repeat(10), action: true, reason: "Message not sent: too long." },
  ]);
  assert.equal(s.undelivered, 0);
});

test("an error about no line of ours is shown", () => {
  const s = session();
  s.connected(0);
  s.received(welcome(), 0);
  const actions = s.received({ error: { code: "BAD_FRAME", message: "No." } }, 0);
  assert.equal(actions[0].item.kind, "error");
  assert.equal(actions[0].item.text, "No.");
});

test("a line over the server's limit is handed back before it is sent", () => {
  const s = session();
  s.connected(0);
  s.received(welcome({ max_text_bytes: 4 }), 0);
  const actions = s.send("héllo", 0);
  assert.deepEqual(actions, [
    {
      type: "refused",
      text: "héllo",
      action: false,
      reason: "Message not sent: it is 6 bytes and the limit is 4 bytes.",
    },
  ]);
  assert.equal(s.undelivered, 0);
});

test("a new name is a new socket: pending lines go on it, and the old end is no trouble", () => {
  const s = session();
  s.connected(0);
  s.received(welcome({ last_seq: 3, rate_limit: 10 }), 0);
  assert.equal(s.rateLimit, 10);
  s.send("typed before", 0);
  assert.deepEqual(s.rename("alicia", 1), [{ type: "reconnect", at: 1 }]);
  assert.equal(s.phase, "away");
  // Should the old socket's close still arrive, it is not trouble.
  assert.deepEqual(s.closed(1, { opened: true, code: 1000, reason: "" }), [
    { type: "reconnect", at: 1 },
  ]);
  assert.equal(s.trouble, "");
  const [join] = transmitted(s.connected(1));
  assert.equal(join.join.name, "alicia");
  assert.equal(join.join.after_seq, 3); // resumes: nothing shown twice
  assert.deepEqual(sends(s.received(welcome({ name: "alicia" }), 1)), ["id0"]);
});

test("a new name the server refuses is said, and the session goes on under the old one", () => {
  const s = session();
  s.connected(0);
  s.received(welcome(), 0);
  s.rename("bad name!", 1);
  s.connected(1);
  const refused = "Names may not contain '!'.";
  const actions = s.closed(2, { opened: true, code: 4003, reason: refused });
  assert.equal(actions[0].item.kind, "error");
  assert.equal(actions[0].item.text, refused);
  assert.deepEqual(actions[1], { type: "reconnect", at: 2 });
  assert.equal(transmitted(s.connected(2))[0].join.name, "alice");
  // A refusal after that is final again, as for any join.
  s.received(welcome(), 2);
  const later = s.closed(3, { opened: true, code: 4003, reason: "no." });
  assert.equal(later[0].type, "giveUp");
});

test("the rooms are asked for once joined, and the answer handed on", () => {
  const s = session();
  assert.equal(s.askRooms()[0].item.kind, "error"); // not connected yet
  s.connected(0);
  s.received(welcome(), 0);
  assert.deepEqual(transmitted(s.askRooms()), [{ rooms: {} }]);
  const rooms = [{ name: "lobby", members: 2, last_seq: 5 }];
  assert.deepEqual(s.received({ rooms: { rooms } }, 0), [{ type: "rooms", rooms }]);
});

test("after a drop, unacknowledged lines go again with their ids, acknowledged ones never", () => {
  const s = session();
  s.connected(0);
  s.received(welcome(), 0);
  for (const text of ["a", "b", "c"]) s.send(text, 0);
  s.received({ ack: { client_msg_id: "id0", seq: 1 } }, 0);
  const closed = s.closed(1, { opened: true, code: 1006, reason: "" });
  assert.equal(closed.at(-1).type, "reconnect");
  s.connected(2);
  assert.deepEqual(sends(s.received(welcome(), 2)), ["id1", "id2"]);
});

test("names are shown as the server says: look-alikes escaped, others as spelt", () => {
  const s = session();
  s.connected(0);
  const shown = s.received(
    welcome({ members: ["alice", "\u0430dmin"], shown: { "\u0430dmin": "\\u0430dmin" } }),
    0,
  );
  assert.match(shown[0].item.text, /here: alice, \\u0430dmin$/);
  s.received({ event: { kind: "join", room: "lobby", user: "b\u043eb", user_shown: "b\\u043eb" } }, 0);
  assert.equal(s.shownName("b\u043eb"), "b\\u043eb");
  assert.equal(s.shownName("alice"), "alice");
  assert.equal(s.memberList(), "alice, b\\u043eb, \\u0430dmin");
});

test("a reset starts the numbering again in the new log", () => {
  const s = session();
  s.connected(0);
  s.received(welcome({ last_seq: 7 }), 0);
  s.received({ event: { kind: "reset", room: "lobby", epoch: "e2" } }, 0);
  s.received(message(1), 0);
  s.closed(1, { opened: true, code: 4014, reason: "server shutting down" });
  const join = transmitted(s.connected(2))[0].join;
  assert.equal(join.after_seq, 1);
  assert.equal(join.epoch, "e2");
});

test("an ending trying again cannot mend gives up with the server's sentence", () => {
  const s = session();
  s.connected(0);
  s.received({ end: { code: "UNAUTHENTICATED", message: "a valid token is required" } }, 0);
  assert.deepEqual(s.closed(0, { opened: true, code: 4016, reason: "a valid token is" }), [
    { type: "giveUp", reason: "A valid token is required.", code: "UNAUTHENTICATED" },
  ]);
  const refused = session();
  refused.connected(0);
  const actions = refused.closed(0, { opened: true, code: 4003, reason: "Names cannot be empty." });
  assert.deepEqual(actions, [
    { type: "giveUp", reason: "Names cannot be empty.", code: "INVALID_ARGUMENT" },
  ]);
  const replaced = session();
  replaced.connected(0);
  replaced.received(welcome(), 0);
  const ended = replaced.closed(0, { opened: true, code: 4010, reason: "replaced: the same" });
  assert.equal(ended[0].type, "giveUp"); // a duplicated tab: no tug of war over the name
});

test("a server whose store is damaged is not retried: the page says why and stops", () => {
  const damaged = `${STORE_DAMAGED} (/srv/purechat.db)`;
  const told = "The server's message store is damaged (/srv/purechat.db): its operator must " +
    "repair it; retrying cannot help.";
  const s = session();
  s.connected(0);
  s.received({ end: { code: "UNAVAILABLE", message: damaged } }, 0);
  assert.deepEqual(s.closed(0, { opened: true, code: 4014, reason: damaged }), [
    { type: "giveUp", reason: told },
  ]);
  assert.deepEqual(s.tick(60), []);
  assert.equal(s.deadline(), null);
  // The close frame alone says it too (its reason is the sentence).
  const closedOnly = session();
  closedOnly.connected(0);
  closedOnly.received(welcome(), 0);
  assert.deepEqual(closedOnly.closed(1, { opened: true, code: 4014, reason: damaged }), [
    { type: "giveUp", reason: told },
  ]);
  // A store that is only away is tried again.
  const away = session();
  away.connected(0);
  const again = away.closed(0, {
    opened: true, code: 4014, reason: "the server cannot reach its store right now",
  });
  assert.equal(again.at(-1).type, "reconnect");
});

test("reconnects back off, with jitter, up to a cap; a welcome starts them again", () => {
  const s = session({ backoff: new Backoff(0.5, 4) });
  const delays = [];
  let now = 0;
  for (let i = 0; i < 6; i++) {
    const actions = s.closed(now, { opened: false, code: 1006, reason: "" });
    const at = actions.find((a) => a.type === "reconnect").at;
    delays.push(at - now);
    now = at;
  }
  assert.deepEqual(delays, [0.375, 0.75, 1.5, 3, 3, 3]);
  s.connected(now);
  s.received(welcome(), now);
  const next = s.closed(now, { opened: true, code: 1006, reason: "" }).find((a) => a.type === "reconnect");
  assert.equal(next.at - now, 0.375);
});

test("close codes carry the status: 4000 plus the gRPC code", () => {
  assert.deepEqual(endingFromClose(4014, "server shutting down"), {
    code: "UNAVAILABLE",
    message: "server shutting down",
  });
  assert.equal(endingFromClose(4008, "").code, "RESOURCE_EXHAUSTED");
  assert.equal(endingFromClose(1006, "").code, "UNAVAILABLE");
});

// -- against a model server ------------------------------------------------------------

/** A seeded generator, so a failure can be run again. */
function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One room as the server keeps it: the store dedupes by id; after a store failure the
 * sender's later lines are refused until the failed one comes again. */
class ModelServer {
  constructor() {
    this.log = [];
    this.seqs = new Map();
    this.toPage = [];
    this.awaiting = null;
  }

  newSocket() {
    this.toPage = [];
    this.awaiting = null;
  }

  handle(frame, fault) {
    if (frame.join) {
      const last = this.log.length;
      this.toPage.push(welcome({ last_seq: last }));
      if (frame.join.after_seq !== undefined) {
        for (let seq = frame.join.after_seq + 1; seq <= last; seq++) this.toPage.push(message(seq));
      }
      return;
    }
    const id = frame.send.client_msg_id;
    if (this.awaiting !== null) {
      if (id !== this.awaiting) {
        this.toPage.push({ error: { code: "STORE_UNAVAILABLE", message: "later", client_msg_id: id } });
        return;
      }
      this.awaiting = null;
    }
    if (fault === "refused" || fault === "unknown") {
      if (fault === "unknown" && !this.seqs.has(id)) this.store(id, frame.send.text);
      this.awaiting = id;
      const code = fault === "refused" ? "STORE_UNAVAILABLE" : "OUTCOME_UNKNOWN";
      this.toPage.push({ error: { code, message: "not now", client_msg_id: id } });
      return;
    }
    const duplicate = this.seqs.has(id);
    if (!duplicate) {
      this.store(id, frame.send.text);
      this.toPage.push(message(this.log.length, frame.send.text));
    }
    this.toPage.push({ ack: { client_msg_id: id, seq: this.seqs.get(id), duplicate } });
  }

  store(id, text) {
    this.log.push(text);
    this.seqs.set(id, this.log.length);
  }
}

test("against a server that refuses and drops, every line is stored once, in order", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = prng(seed);
    const s = session({ rng: random });
    const server = new ModelServer();
    const typed = [];
    let now = 0;
    let open = false;
    let toServer = [];
    const act = (actions) => {
      for (const action of actions) {
        if (action.type === "transmit") {
          assert.ok(open, "transmitted without a socket");
          toServer.push(action.frame);
        }
        assert.notEqual(action.type, "giveUp");
      }
    };
    for (let step = 0; step < 400; step++) {
      const roll = random();
      if (roll < 0.25) {
        typed.push(`line ${typed.length}`);
        act(s.send(typed.at(-1), now));
      } else if (roll < 0.3 && !open) {
        now = Math.max(now, s.reconnectAt);
        open = true;
        server.newSocket();
        toServer = [];
        act(s.connected(now));
      } else if (roll < 0.6 && open && toServer.length) {
        const fault = random();
        server.handle(toServer.shift(), fault < 0.1 ? "refused" : fault < 0.15 ? "unknown" : "ok");
      } else if (roll < 0.9 && open && server.toPage.length) {
        act(s.received(server.toPage.shift(), now));
      } else if (roll < 0.93 && open) {
        open = false;
        toServer = [];
        act(s.closed(now, { opened: true, code: 1006, reason: "" }));
      } else {
        now += random();
        if (open) act(s.tick(now));
      }
    }
    // Then a calm network until everything is delivered.
    for (let step = 0; step < 10_000 && s.undelivered; step++) {
      if (!open) {
        now = Math.max(now, s.reconnectAt);
        open = true;
        server.newSocket();
        toServer = [];
        act(s.connected(now));
      } else if (toServer.length) {
        server.handle(toServer.shift(), "ok");
      } else if (server.toPage.length) {
        act(s.received(server.toPage.shift(), now));
      } else {
        now += RETRY_PAUSE;
        act(s.tick(now));
      }
    }
    assert.equal(s.undelivered, 0, `seed ${seed}: lines left undelivered`);
    assert.deepEqual(server.log, typed, `seed ${seed}: stored ${server.log.length} of ${typed.length}`);
  }
});
