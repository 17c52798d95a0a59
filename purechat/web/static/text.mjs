// How a message's text is shown, without the DOM: where its links and mentions are, how
// control characters are made visible, which day a time falls on. app.mjs turns the
// pieces into elements (as text, never as HTML); node tests this file alone
// (tests/web/text.test.mjs).

// Characters that would be obeyed rather than shown: controls, and bidi overrides.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// A link as people write one: http:// or https://, up to a space, a control or bidi
// character, or a character that cannot be in a URL (<, >, ").
// eslint-disable-next-line no-control-regex
const LINK = /https?:\/\/[^\s<>"\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]+/gi;
// Punctuation that ends a sentence rather than the link ("see https://x.org/a.").
const TRAILING = /[.,;:!?'*_~]+$/;

/** Text with control and bidi characters shown as \uXXXX escapes, never obeyed. */
export function visible(text) {
  return String(text).replace(
    INVISIBLE,
    (ch) => `\\u${ch.codePointAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** The address a link may point to: an http or https URL, else null (never
 * `javascript:`, `data:` or anything a click would run). */
export function safeHref(candidate) {
  let url;
  try {
    url = new URL(candidate);
  } catch {
    return null;
  }
  return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
}

function withoutTrailing(link) {
  let trimmed = link.replace(TRAILING, "");
  // A closing bracket belongs to the link only when the link opened one: (https://x.org/a_(b))
  while (trimmed.endsWith(")") && count(trimmed, "(") < count(trimmed, ")")) {
    trimmed = trimmed.slice(0, -1).replace(TRAILING, "");
  }
  return trimmed;
}

function count(text, ch) {
  return text.split(ch).length - 1;
}

function namePattern(name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}_])${escaped}(?![\\p{L}\\p{N}_])`, "giu");
}

/** Whether text names `name` as a word, case aside (`@alice`, `alice:`, `Alice,`), as
 * `purechat join` rings its bell for. */
export function mentions(text, name) {
  return Boolean(name) && namePattern(name).test(text);
}

/** The text as pieces to draw in order: {kind: "text" | "link" | "mention", text, href?}.
 * Every piece's text is as shown (escapes for control characters); a link's href is an
 * http(s) URL; `me`'s name (when given) is a mention outside links. */
export function pieces(text, me = "") {
  const out = [];
  const plain = (part) => {
    if (!part) return;
    if (!me) {
      out.push({ kind: "text", text: visible(part) });
      return;
    }
    let at = 0;
    for (const found of part.matchAll(namePattern(me))) {
      if (found.index > at) out.push({ kind: "text", text: visible(part.slice(at, found.index)) });
      out.push({ kind: "mention", text: visible(found[0]) });
      at = found.index + found[0].length;
    }
    if (at < part.length) out.push({ kind: "text", text: visible(part.slice(at)) });
  };
  const source = String(text);
  let at = 0;
  for (const found of source.matchAll(LINK)) {
    const link = withoutTrailing(found[0]);
    const href = safeHref(link);
    if (!href) continue;
    plain(source.slice(at, found.index));
    out.push({ kind: "link", text: visible(link), href });
    at = found.index + link.length;
  }
  plain(source.slice(at));
  return out;
}

/** The local calendar day of a time (ms since the epoch), as "YYYY-MM-DD". */
export function dayOf(timeMs) {
  const when = new Date(timeMs);
  const pad = (n) => String(n).padStart(2, "0");
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())}`;
}

/** A date separator's words: "Today", "Yesterday", or the date in the reader's
 * language ("Monday, 3 March 2025"). */
export function dayLabel(timeMs, nowMs = Date.now(), locale = undefined) {
  const day = dayOf(timeMs);
  if (day === dayOf(nowMs)) return "Today";
  const yesterday = new Date(nowMs);
  yesterday.setDate(yesterday.getDate() - 1);
  if (day === dayOf(yesterday.getTime())) return "Yesterday";
  return new Date(timeMs).toLocaleDateString(locale, {
    weekday: "long",
    year: "numeric",
    month: "long",
    day: "numeric",
  });
}
