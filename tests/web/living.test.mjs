// Living messages on the page without a DOM, under node: the session's frames for
// replies, edits, deletes, reactions and typing (sent once, in their place, handed back
// when refused; typing at most once every 3 s, never queued), change events handed on
// as revisions, and living.mjs's commands, revisions, quotes, reactions and typing.
// Run by tests/test_web_session.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  TYPING_SHOWN,
  TypingShown,
  livingCommand,
  quoteOf,
  reactionsShown,
  revised,
  shortened,
  tombstone,
} from "../../purechat/web/static/living.mjs";
import { CommandUsage } from "../../purechat/web/static/moderation.mjs";
import { Session, TYPING_EVERY, itemOf } from "../../purechat/web/static/session.mjs";

function joined() {
  let n = 0;
  const s = new Session({ name: "alice", room: "lobby", sessionId: "s1", newId: () => `c${n++}` });
  s.connected(0);
  s.received({ welcome: { room: "lobby", name: "alice", members: ["alice"], account: "alice" } }, 0);
  return s;
}

const frames = (actions) => actions.filter((a) => a.type === "transmit").map((a) => a.frame);

test("a reply names the message it answers; a change is a line of its own, in order", () => {
  const s = joined();
  assert.deepEqual(frames(s.send("yes", 1, false, 12)), [
    { send: { text: "yes", client_msg_id: "c0", action: false, reply_to: 12 } },
  ]);
  assert.deepEqual(frames(s.change({ edit: { seq: 12, text: "new" } }, "/edit 12 new", 1)), [
    { edit: { seq: 12, text: "new", client_msg_id: "c1" } },
  ]);
  assert.deepEqual(frames(s.change({ react: { seq: 12, emoji: "👍", remove: false } }, "", 1)), [
    { react: { seq: 12, emoji: "👍", remove: false, client_msg_id: "c2" } },
  ]);
  assert.deepEqual(frames(s.change({ delete: { seq: 12 } }, "/delete 12", 1)), [
    { delete: { seq: 12, client_msg_id: "c3" } },
  ]);
  assert.equal(s.undelivered, 4);
  // Resent on a new socket with the same ids until acked.
  s.closed(2, { opened: true, code: 1006, reason: "" });
  s.connected(3);
  const again = frames(s.received({ welcome: { room: "lobby", name: "alice" } }, 3));
  assert.deepEqual(
    again.map((f) => Object.values(f)[0].client_msg_id),
    ["c0", "c1", "c2", "c3"],
  );
  assert.equal(again[0].send.reply_to, 12);
  s.received({ ack: { client_msg_id: "c1", seq: 20 } }, 4);
  assert.equal(s.undelivered, 3);
});

test("a refused change hands back its text and the server's sentence; a reply its number", () => {
  const s = joined();
  s.change({ edit: { seq: 2, text: "x" } }, "/edit 2 x", 1);
  const [refused] = s.received(
    { error: { code: "PERMISSION_DENIED", message: "You can only edit your own messages.", client_msg_id: "c0" } },
    1,
  );
  assert.deepEqual(
    [refused.type, refused.text, refused.reason, refused.change, refused.typed],
    ["refused", "/edit 2 x", "You can only edit your own messages.", true, true],
  );
  s.send("why", 1, false, 99);
  const [back] = s.received(
    { error: { code: "INVALID_ARGUMENT", message: "There is no message #99 to reply to.", client_msg_id: "c1" } },
    1,
  );
  assert.equal(back.replyTo, 99);
  assert.equal(s.undelivered, 0);
});

test("typing goes out at most once every 3 s, and only while joined", () => {
  const s = joined();
  assert.deepEqual(s.typing(10).frame, { typing: {} });
  assert.equal(s.typing(10 + TYPING_EVERY - 0.1), null);
  assert.deepEqual(s.typing(10 + TYPING_EVERY).frame, { typing: {} });
  s.closed(20, { opened: true, code: 1006, reason: "" });
  assert.equal(s.typing(30), null);
});

test("others typing are handed on (never myself); changes as revisions, numbered", () => {
  const s = joined();
  assert.deepEqual(s.received({ typing: { room: "lobby", users: ["bob", "alice"], more: 2 } }, 1), [
    { type: "typing", users: ["bob"], more: 2 },
  ]);
  const edit = {
    event: {
      kind: "edit", room: "lobby", seq: 7, user: "bob", text: "fixed", target: 5,
      revision: { edited_unix_ms: 99, reactions: [{ emoji: "👍", users: ["carol"] }] },
    },
  };
  const [action] = s.received(edit, 1);
  assert.equal(action.type, "revise");
  assert.deepEqual(
    [action.item.kind, action.item.target, action.item.text, action.item.revision],
    ["edit", 5, "fixed", { editedMs: 99, deleted: false, deletedBy: "", reactions: [{ emoji: "👍", users: ["carol"] }] }],
  );
  assert.equal(s.lastSeq, 7);
  const reply = itemOf({ kind: "message", seq: 8, user: "bob", text: "ok", reply_to: 5 });
  assert.equal(reply.replyTo, 5);
});

test("commands are read as /reply N TEXT, /edit [N] TEXT, /delete N, /react N EMOJI", () => {
  assert.deepEqual(livingCommand("reply", "12 the deploy is done"), {
    reply: { seq: 12, text: "the deploy is done" },
  });
  assert.deepEqual(livingCommand("edit", "#12 better words"), {
    change: { edit: { seq: 12, text: "better words" } },
  });
  assert.deepEqual(livingCommand("edit", "typo fixed", { lastMine: 9 }), {
    change: { edit: { seq: 9, text: "typo fixed" } },
  });
  assert.deepEqual(livingCommand("delete", "3"), { change: { delete: { seq: 3 } } });
  assert.deepEqual(livingCommand("react", "3 👍", { reacted: () => true }), {
    change: { react: { seq: 3, emoji: "👍", remove: true } },
  });
  for (const [word, argument] of [["reply", "12"], ["delete", "x"], ["react", "3"], ["edit", ""]]) {
    assert.throws(() => livingCommand(word, argument), CommandUsage);
  }
  assert.throws(() => livingCommand("edit", "new words"), /no message here to edit/);
});

test("a message after a change: new text, a tombstone saying by whom, reactions counted", () => {
  const said = { kind: "message", seq: 5, user: "bob", text: "teh deploy" };
  const edited = revised(said, { kind: "edit", text: "the deploy", revision: { editedMs: 2, reactions: [] } });
  assert.equal(edited.text, "the deploy");
  const gone = revised(edited, { kind: "delete", revision: { deleted: true, deletedBy: "alice", reactions: [] } });
  assert.equal(gone.text, "");
  assert.equal(tombstone(gone.revision), "message deleted by alice");
  assert.equal(tombstone({ deleted: true, deletedBy: "" }), "message deleted");
  const shown = reactionsShown(
    [{ emoji: "👍", users: ["bob", "alice"] }, { emoji: "🎉", users: [] }],
    "alice",
  );
  assert.deepEqual(shown, [
    { emoji: "👍", count: 2, mine: true, label: "👍 2: bob and you (press to take yours back)" },
  ]);
});

test("a reply's quote is short, from what is held, and says when it is not", () => {
  assert.deepEqual(quoteOf(12, null), { who: "", seq: 12, text: "(not shown here)", missing: true });
  const long = "x".repeat(100);
  assert.equal(quoteOf(12, { user: "bob", text: long }).text, `${"x".repeat(59)}…`);
  assert.equal(shortened("first line\nsecond"), "first line …");
  assert.equal(quoteOf(12, { user: "bob", text: "", revision: { deleted: true } }).text, "message deleted");
});

test("someone is shown typing for at most 6 s, or until their message", () => {
  const typing = new TypingShown();
  typing.heard(["bob"], 0, 100);
  assert.equal(typing.sentence(100), "bob is typing…");
  typing.heard(["carol"], 2, 101);
  assert.equal(typing.sentence(102), "bob, carol and 2 more are typing…");
  assert.equal(typing.deadline(), 100 + TYPING_SHOWN);
  typing.said("carol");
  assert.equal(typing.sentence(102), "bob and 2 more are typing…");
  assert.equal(typing.sentence(100 + TYPING_SHOWN), "");
});

test("a message to the account in a conversation not open here is handed on as news", () => {
  const s = joined();
  const notice = { room: "@dm:alice:bob", peer: "bob", seq: 3, text: "lunch?" };
  assert.deepEqual(s.received({ conversation: notice }, 1), [{ type: "conversation", ...notice }]);
  assert.deepEqual(s.received({ conversation: {} }, 1), [
    { type: "conversation", room: "", peer: "", seq: 0, text: "" },
  ]);
});
