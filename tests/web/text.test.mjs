// How the page shows a message's text (purechat/web/static/text.mjs), under node:
// links that can only be http(s), mentions of the reader's name, escapes for control
// characters, and the words of a date separator.
// Run by tests/test_web_session.py: node --test tests/web/text.test.mjs

import assert from "node:assert/strict";
import { test } from "node:test";

import { dayLabel, mentions, pieces, safeHref, visible } from "../../purechat/web/static/text.mjs";

test("http and https links are links; the sentence's punctuation is not part of them", () => {
  assert.deepEqual(pieces("see https://example.org/a?b=1#c, or (http://x.org/wiki/A_(b)))."), [
    { kind: "text", text: "see " },
    { kind: "link", text: "https://example.org/a?b=1#c", href: "https://example.org/a?b=1#c" },
    { kind: "text", text: ", or (" },
    { kind: "link", text: "http://x.org/wiki/A_(b)", href: "http://x.org/wiki/A_(b)" },
    { kind: "text", text: "))." },
  ]);
});

test("nothing but http and https is ever a link", () => {
  for (const text of [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.cookie)//https",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox",
    "file:///etc/passwd",
    "ftp://example.org/",
    "http//missing-colon.org",
  ]) {
    assert.deepEqual(
      pieces(text).filter((piece) => piece.kind === "link"),
      [],
      text,
    );
  }
  // A link hidden after a scheme that runs script is the http(s) part alone.
  const [, link] = pieces("javascript:https://example.org/");
  assert.deepEqual(link, { kind: "link", text: "https://example.org/", href: "https://example.org/" });
  assert.equal(safeHref("javascript:alert(1)"), null);
  assert.equal(safeHref(" javascript:alert(1)"), null);
  assert.equal(safeHref("https://example.org"), "https://example.org/");
});

test("control and bidi characters end a link and are shown as escapes", () => {
  assert.deepEqual(pieces("https://a.org/\u202etxt.exe"), [
    { kind: "link", text: "https://a.org/", href: "https://a.org/" },
    { kind: "text", text: "\\u202etxt.exe" },
  ]);
  assert.equal(visible("a\u001b[2Jb"), "a\\u001b[2Jb");
});

test("the reader's name is a mention as a word, case aside, never inside a link", () => {
  assert.ok(mentions("Alice, lunch?", "alice"));
  assert.ok(mentions("@alice: ping", "alice"));
  assert.ok(!mentions("malice aforethought", "alice"));
  assert.ok(!mentions("alice2 is someone else", "alice"));
  assert.ok(!mentions("anything", ""));
  assert.deepEqual(pieces("ALICE see https://alice.org/ alice", "alice"), [
    { kind: "mention", text: "ALICE" },
    { kind: "text", text: " see " },
    { kind: "link", text: "https://alice.org/", href: "https://alice.org/" },
    { kind: "text", text: " " },
    { kind: "mention", text: "alice" },
  ]);
  assert.ok(mentions("is a.b here?", "a.b") && !mentions("is axb here?", "a.b")); // literal
});

test("a date separator says today, yesterday, or the date", () => {
  const now = new Date(2025, 2, 3, 9, 30).getTime(); // Monday 3 March 2025, local time
  assert.equal(dayLabel(new Date(2025, 2, 3, 0, 1).getTime(), now), "Today");
  assert.equal(dayLabel(new Date(2025, 2, 2, 23, 59).getTime(), now), "Yesterday");
  const older = dayLabel(new Date(2025, 1, 28, 12).getTime(), now, "en-GB");
  assert.match(older, /^Friday,? 28 February 2025$/); // ICU versions differ on the comma
});
