// The page's moderation commands (purechat/web/static/moderation.mjs) and the session's
// handling of them (session.mjs), under node: the same shapes as `purechat join`
// (client/moderation.py), a command that is a line (sent once, in its place, resent
// until acked), a refusal handed back, and moderation events that keep the topic and
// the member's role. Run by tests/test_web_session.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import { CommandUsage, formatDuration, parseDuration, typed } from "../../purechat/web/static/moderation.mjs";
import { Session } from "../../purechat/web/static/session.mjs";

test("commands are read as purechat join reads them", () => {
  assert.deepEqual(typed("ban", "spammer 1h spam and more"), {
    action: "ban",
    target: "spammer",
    seconds: 3600,
    reason: "spam and more",
  });
  assert.deepEqual(typed("ban", "spammer for spam"), {
    action: "ban",
    target: "spammer",
    reason: "for spam",
  });
  assert.deepEqual(typed("kick", "Mary Ann rude", ["Mary Ann", "bob"]), {
    action: "kick",
    target: "Mary Ann",
    reason: "rude",
  });
  assert.deepEqual(typed("kick", '"Mary Ann" rude'), {
    action: "kick",
    target: "Mary Ann",
    reason: "rude",
  });
  assert.deepEqual(typed("op", "Mary Ann"), { action: "op", target: "Mary Ann" });
  assert.deepEqual(typed("topic", "-"), { action: "topic", text: "" });
  assert.deepEqual(typed("mode", "invite-only"), { action: "mode", text: "invite-only" });
  assert.deepEqual(typed("claim", ""), { action: "claim" });
});

test("a command in a shape it does not take is a usage sentence, never sent", () => {
  const wrong = [
    ["ban", "", "Usage: /ban NAME [DURATION] [REASON]."],
    ["mode", "secret", "Usage: /mode invite-only|open."],
    ["claim", "now", "Usage: /claim. (It takes nothing after it.)"],
    ["mute", "bob 3y", "“3y” is not a duration: give a number and a unit, like 30s, 10m, 2h, 7d or 1w."],
    ["ban", "bob 400d", "A duration is from a second to a year, like 30m, 2h or 7d."],
  ];
  for (const [action, argument, said] of wrong) {
    assert.throws(() => typed(action, argument), (error) => {
      assert.ok(error instanceof CommandUsage);
      assert.equal(error.message, said);
      return true;
    });
  }
  assert.equal(parseDuration("90m"), 5400);
  assert.equal(formatDuration(5400), "90m");
  assert.equal(formatDuration(3600), "1h");
});

function joined() {
  let n = 0;
  const s = new Session({ name: "alice", room: "den", sessionId: "s", newId: () => `id${n++}` });
  s.connected(0);
  s.received(
    { welcome: { room: "den", name: "alice", members: ["alice", "bob"], last_seq: 0, epoch: "e", role: "member", topic: "" } },
    0,
  );
  return s;
}

test("a command is a line: in its place, sent again until acked, a refusal handed back", () => {
  const s = joined();
  const first = s.send("hello", 1);
  const ban = s.moderate({ action: "ban", target: "bob", seconds: 60 }, "/ban bob 1m", 1);
  assert.deepEqual(first[0].frame, { send: { text: "hello", client_msg_id: "id0", action: false } });
  assert.deepEqual(ban[0].frame, {
    moderate: { action: "ban", target: "bob", seconds: 60, client_msg_id: "id1" },
  });
  // The socket drops before an answer: both go again, in order, with the same ids.
  s.closed(2, { opened: true, code: 4014, reason: "server shutting down" });
  s.connected(3);
  const again = s.received({ welcome: { room: "den", name: "alice", members: [], last_seq: 0, epoch: "e" } }, 3);
  const frames = again.filter((a) => a.type === "transmit").map((a) => a.frame);
  assert.deepEqual(frames.map((f) => (f.send || f.moderate).client_msg_id), ["id0", "id1"]);
  s.received({ ack: { client_msg_id: "id0", seq: 1 } }, 4);
  const refused = s.received(
    { error: { code: "NOT_ALLOWED", message: "Only an operator of this room may ban.", client_msg_id: "id1" } },
    4,
  );
  assert.deepEqual(refused, [
    {
      type: "refused",
      text: "/ban bob 1m",
      action: false,
      reason: "Only an operator of this room may ban.",
      command: true,
      typed: true,
    },
  ]);
  assert.equal(s.undelivered, 0);
});

test("moderation events are shown, numbered, and keep the topic and my role", () => {
  const s = joined();
  assert.equal(s.moderator, false);
  const event = (seq, moderation, text) => ({
    event: { kind: "moderation", room: "den", seq, user: moderation.by, text, time_unix_ms: 5, moderation },
  });
  const shown = s.received(event(1, { action: "claim", by: "alice" }, "alice claimed the room and owns it now"), 1);
  assert.equal(shown[0].item.kind, "moderation");
  assert.equal(shown[0].item.text, "alice claimed the room and owns it now");
  assert.equal(s.role, "owner");
  assert.equal(s.moderator, true);
  s.received(event(2, { action: "topic", by: "alice", topic: "plans" }, "alice set the topic: plans"), 1);
  assert.equal(s.topic, "plans");
  assert.equal(s.lastSeq, 2); // a resume starts after it
  const other = joined();
  other.received(event(1, { action: "op", by: "carol", target: "alice" }, "carol made alice an operator"), 1);
  assert.equal(other.role, "operator");
  other.received(event(2, { action: "deop", by: "carol", target: "alice" }, "x"), 1);
  assert.equal(other.role, "member");
});
