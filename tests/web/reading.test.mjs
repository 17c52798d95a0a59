// Unread counts, read markers, what is in view and how search results are marked
// (purechat/web/static/reading.mjs) alone, under node; and the session's asks and the
// frames that answer them (session.mjs). Run by tests/test_web_session.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Unread,
  markedPieces,
  newestInView,
  placeName,
  toMark,
} from "../../purechat/web/static/reading.mjs";
import { Session, itemOf } from "../../purechat/web/static/session.mjs";

const DM = "@dm:alice:bob";

test("the server's counts, then what is heard live, settle when another session reads", () => {
  const unread = new Unread();
  unread.listed([{ room: DM, peer: "alice", last_seq: 2, read_seq: 0, unread: 2, mentions: 1 }]);
  assert.deepEqual(unread.of(DM), { unread: 2, mentions: 1, readSeq: 0, lastSeq: 2, peer: "alice" });
  unread.heard(DM, 3, { mention: true });
  unread.heard(DM, 4, { mine: true }); // my own line is never unread
  unread.heard(DM, 3, { mention: true }); // heard twice (two sockets): counted once
  assert.equal(unread.of(DM).unread, 3);
  assert.equal(unread.of(DM).mentions, 2);
  // Another session read up to 3: all of what the server counted, and the live one.
  assert.equal(unread.read(DM, 3), false);
  assert.deepEqual(unread.of(DM), { unread: 0, mentions: 0, readSeq: 3, lastSeq: 4, peer: "alice" });
  assert.equal(unread.read(DM, 2), false); // a marker never goes back
  assert.equal(unread.of(DM).readSeq, 3);
});

test("a marker inside what the server counted asks for the list again", () => {
  const unread = new Unread();
  unread.listed([{ room: "lobby", peer: "", last_seq: 10, read_seq: 4, unread: 6, mentions: 0 }]);
  unread.heard("lobby", 11);
  assert.equal(unread.read("lobby", 7), true); // 8..10 are unread, which the page cannot tell
  assert.equal(unread.of("lobby").unread, 7); // unchanged until the server says
  unread.listed([{ room: "lobby", last_seq: 11, read_seq: 7, unread: 4, mentions: 0 }]);
  assert.equal(unread.of("lobby").unread, 4);
  assert.deepEqual(unread.conversations(), []); // a room is not a conversation
});

test("a room opened without a marker counts only what comes after it was opened", () => {
  const unread = new Unread();
  unread.opened("dev", 40);
  unread.heard("dev", 40); // history, or the newest one: already there
  unread.heard("dev", 41, { mention: true });
  assert.deepEqual(unread.of("dev"), { unread: 1, mentions: 1, readSeq: 0, lastSeq: 41, peer: "" });
  assert.equal(unread.read("dev", 41), false);
  assert.equal(unread.of("dev").unread, 0);
  // Opened again later (a reconnect): what is known stays.
  unread.heard("dev", 42);
  unread.opened("dev", 42);
  assert.equal(unread.of("dev").unread, 1);
});

test("conversations are listed by the other account's name, opened ones too", () => {
  const unread = new Unread();
  unread.listed([{ room: "@dm:a:c", peer: "carol", last_seq: 1, read_seq: 1, unread: 0 }]);
  unread.opened("@dm:a:b", 0, "bob");
  assert.deepEqual(
    unread.conversations().map((c) => [c.peer, c.unread]),
    [["bob", 0], ["carol", 0]],
  );
});

test("only a message in view, while the person looks, is marked; never twice", () => {
  const shown = [
    { seq: 5, top: -40, bottom: -10 }, // scrolled past, above
    { seq: 6, top: -10, bottom: 20 }, // partly in view
    { seq: 7, top: 20, bottom: 50 },
    { seq: 8, top: 400, bottom: 430 }, // below the fold
  ];
  assert.equal(newestInView(shown, 0, 300), 7);
  assert.equal(newestInView([], 0, 300), 0);
  assert.equal(toMark({ looking: true, seen: 7, readSeq: 3, asked: 0 }), 7);
  assert.equal(toMark({ looking: false, seen: 7, readSeq: 3, asked: 0 }), 0); // hidden tab
  assert.equal(toMark({ looking: true, seen: 7, readSeq: 7, asked: 0 }), 0); // read already
  assert.equal(toMark({ looking: true, seen: 7, readSeq: 3, asked: 7 }), 0); // asked already
});

test("matched words are pieces of their own, counted in code points as the server counts", () => {
  // "🙂 deploy done": the emoji is one code point but two UTF-16 units.
  assert.deepEqual(markedPieces("🙂 deploy done", [2, 8]), [
    { kind: "text", text: "🙂 " },
    { kind: "match", text: "deploy" },
    { kind: "text", text: " done" },
  ]);
  assert.deepEqual(markedPieces("Деплой\nи деплой", [0, 6, 9, 15]), [
    { kind: "match", text: "Деплой" },
    { kind: "text", text: "\nи " },
    { kind: "match", text: "деплой" },
  ]);
  // Control characters are shown, never obeyed; marks past the end are cut.
  assert.deepEqual(markedPieces("a\u202eb", [0, 1, 2, 99]), [
    { kind: "match", text: "a" },
    { kind: "text", text: "\\u202e" },
    { kind: "match", text: "b" },
  ]);
  assert.equal(placeName("lobby", ""), "lobby");
  assert.equal(placeName(DM, "alice"), "with alice");
});

function joined(fields = {}) {
  const s = new Session({ name: "bob", room: "", dm: "alice", sessionId: "s1", ...fields });
  s.connected(0);
  s.received(
    { welcome: { room: DM, name: "bob", members: ["bob"], last_seq: 3, epoch: "e", account: "bob", peer: "alice" } },
    0,
  );
  return s;
}

test("a conversation joins with dm and resumes as one", () => {
  const s = new Session({ name: "bob", room: "", dm: "alice", sessionId: "s1" });
  assert.equal(s.connected(0)[0].frame.join.dm, "alice");
  s.received({ welcome: { room: DM, name: "bob", last_seq: 3, epoch: "e", account: "bob", peer: "alice" } }, 0);
  assert.equal(s.peer, "alice");
  assert.equal(s.room, DM);
  s.closed(1, { opened: true, code: 1006, reason: "" });
  const again = s.connected(2)[0].frame.join;
  assert.equal(again.dm, "alice");
  assert.equal(again.after_seq, 3);
});

test("asks go on the joined socket, one page of history at a time", () => {
  const s = joined();
  assert.deepEqual(s.askHistory({ before: 40, limit: 50 }).frame, {
    history: { room: DM, before: 40, limit: 50 },
  });
  assert.equal(s.askHistory({ before: 40 }), null); // one on its way already
  const [page] = s.received(
    {
      history: {
        room: DM,
        events: [
          { kind: "gap", room: DM, seq: 0, gap_until: 10 },
          { kind: "message", room: DM, seq: 11, user: "alice", text: "old", time_unix_ms: 5 },
        ],
        more_before: false,
      },
    },
    1,
  );
  assert.equal(page.type, "history");
  assert.equal(page.moreBefore, false);
  assert.deepEqual(
    page.items.map((i) => [i.kind, i.seq, i.text, i.history]),
    [["gap", 0, "messages 1 to 10 are no longer kept", true], ["message", 11, "old", true]],
  );
  assert.equal(s.lastSeq, 3); // older pages never move where the session resumes
  assert.ok(s.askHistory({ around: 7 }));
  // A refused ask (no message id) lets the page ask again.
  s.received({ error: { code: "NOT_ALLOWED", message: "no", client_msg_id: "" } }, 2);
  assert.ok(s.askHistory({ before: 11 }));
  assert.deepEqual(s.askSearch("deploy", "p2").frame, { search: { text: "deploy", page: "p2" } });
  assert.deepEqual(s.askSearch("deploy", "", 20).frame, { search: { text: "deploy", limit: 20 } });
  assert.deepEqual(s.askConversations().frame, { conversations: {} });
  assert.deepEqual(s.markRead(3).frame, { mark_read: { room: DM, seq: 3 } });
  assert.deepEqual(s.received({ read: { room: DM, seq: 3 } }, 3), [{ type: "read", room: DM, seq: 3 }]);
});

test("a guest asks for no markers or conversations; nobody asks while away", () => {
  const guest = new Session({ name: "g", room: "lobby", sessionId: "s" });
  guest.connected(0);
  assert.equal(guest.askSearch("x"), null);
  guest.received({ welcome: { room: "lobby", name: "g", last_seq: 0, epoch: "e" } }, 0);
  assert.equal(guest.markRead(1), null);
  assert.equal(guest.askConversations(), null);
  assert.ok(guest.askSearch("x"));
});

test("search results and conversation lists become actions", () => {
  const s = joined();
  const [found] = s.received(
    {
      search: {
        found: [
          {
            event: { kind: "message", room: DM, seq: 2, user: "alice", text: "the deploy", time_unix_ms: 9 },
            marks: [4, 10],
            peer: "alice",
          },
        ],
        next: "9:2:x",
      },
    },
    0,
  );
  assert.equal(found.type, "found");
  assert.equal(found.next, "9:2:x");
  assert.deepEqual(found.found[0].marks, [4, 10]);
  assert.equal(found.found[0].item.seq, 2);
  const entries = [{ room: DM, peer: "alice", last_seq: 3, read_seq: 1, unread: 2, mentions: 0 }];
  assert.deepEqual(s.received({ conversations: { entries } }, 0), [{ type: "conversations", entries }]);
  assert.equal(itemOf({ kind: "strange" }).kind, "gap");
});
